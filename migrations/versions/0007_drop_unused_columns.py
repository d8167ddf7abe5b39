"""drop columns nothing reads: plan_tasks.parent_key (sub-tasks have dependencies, not parents)
and model_cards.consecutive_failures (the circuit breaker counts failures in memory)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plan_tasks", schema=None) as batch_op:
        batch_op.drop_column("parent_key")
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.drop_column("consecutive_failures")


def downgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("plan_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_key", sa.String(length=32), nullable=True))
