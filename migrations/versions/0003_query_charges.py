"""query charges: per-session quote, charge and split; per-task cost; model card teacher

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

import prsm.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AMOUNT = prsm.db.models.TokenAmount(precision=78, scale=0)


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("quoted", AMOUNT, nullable=True))
        batch_op.add_column(sa.Column("charged", AMOUNT, nullable=True))
        batch_op.add_column(sa.Column("charge_split", sa.JSON(), nullable=True))
    with op.batch_alter_table("plan_tasks", schema=None) as batch_op:
        # Sessions from before pricing cost nothing: existing rows get 0.
        batch_op.add_column(sa.Column("cost", AMOUNT, nullable=False, server_default="0"))
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("teacher", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.drop_column("teacher")
    with op.batch_alter_table("plan_tasks", schema=None) as batch_op:
        batch_op.drop_column("cost")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("charge_split")
        batch_op.drop_column("charged")
        batch_op.drop_column("quoted")
        batch_op.drop_column("hold_id")
