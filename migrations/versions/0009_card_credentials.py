"""Remote cards carry their owner's credential for the endpoint, sealed under the node's key

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.drop_column("credential")
