"""A canary's baseline: the incumbent's own agreement across its cluster, which scales the
canary's target (prsm/canary.py)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("canaries") as batch:
        batch.add_column(sa.Column("baseline", sa.Float(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("canaries") as batch:
        batch.drop_column("baseline")
