"""Quality: grades of models' answers, and each model's running totals per capability

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grades",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("task_key", sa.String(length=32), nullable=True),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("capability", sa.String(length=64), nullable=False),
        sa.Column("cluster", sa.String(length=64), server_default="", nullable=False),
        sa.Column("grader", sa.String(length=160), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grades")),
    )
    op.create_index("ix_grades_session_task", "grades", ["session_id", "task_key"], unique=False)
    op.create_index(op.f("ix_grades_model_id"), "grades", ["model_id"], unique=False)
    op.create_index(op.f("ix_grades_created_at"), "grades", ["created_at"], unique=False)
    op.create_table(
        "model_quality",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("capability", sa.String(length=64), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "capability", "cluster", name=op.f("pk_model_quality")),
    )


def downgrade() -> None:
    op.drop_table("model_quality")
    op.drop_index(op.f("ix_grades_created_at"), table_name="grades")
    op.drop_index(op.f("ix_grades_model_id"), table_name="grades")
    op.drop_index("ix_grades_session_task", table_name="grades")
    op.drop_table("grades")
