"""Model cards offered by peer nodes: what the peer itself asks for them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_cards") as batch:
        batch.add_column(sa.Column("peer", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_cards") as batch:
        batch.drop_column("peer")
