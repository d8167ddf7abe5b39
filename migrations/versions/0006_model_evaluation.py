"""model card evaluation: what a distillation job measured (agreement, KL, perplexity, size and
speed ratios) and its provenance (teacher, data CID, job id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_cards", schema=None) as batch_op:
        batch_op.drop_column("evaluation")
