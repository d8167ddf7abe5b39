"""The federation's members as this node follows the node registry

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_peers",
        sa.Column("operator", sa.String(length=42), nullable=False),
        sa.Column("endpoint", sa.String(length=256), nullable=False),
        sa.Column("catalogue", sa.String(length=128), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("operator", name=op.f("pk_federation_peers")),
    )


def downgrade() -> None:
    op.drop_table("federation_peers")
