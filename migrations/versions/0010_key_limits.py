"""Per-key limits: requests and tokens per minute, concurrent queries, an FTNS budget per period

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from prsm.db.models import TokenAmount

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("budget", TokenAmount(precision=78, scale=0), nullable=True))
        batch_op.add_column(sa.Column("budget_period_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        for column in ("budget_period_s", "budget", "max_concurrent", "tpm", "rpm"):
            batch_op.drop_column(column)
