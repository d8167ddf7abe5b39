"""ftns ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import prsm.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ftns_accounts",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("balance", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ftns_accounts")),
    )
    op.create_table(
        "ftns_transactions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hold_id", sa.String(length=36), nullable=True),
        sa.Column("memo", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ftns_transactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ftns_transactions_idempotency_key")),
    )
    with op.batch_alter_table("ftns_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ftns_transactions_hold_id"), ["hold_id"], unique=False)

    op.create_table(
        "ftns_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=160), nullable=False),
        sa.Column("amount", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.Column("balance_after", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ftns_accounts.id"], name=op.f("fk_ftns_entries_account_id_ftns_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ftns_transactions.id"],
            name=op.f("fk_ftns_entries_transaction_id_ftns_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ftns_entries")),
    )
    with op.batch_alter_table("ftns_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ftns_entries_account_seq", ["account_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ftns_entries_transaction_id"), ["transaction_id"], unique=False)

    op.create_table(
        "ftns_holds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=160), nullable=False),
        sa.Column("amount", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ftns_accounts.id"], name=op.f("fk_ftns_holds_account_id_ftns_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ftns_holds")),
    )
    with op.batch_alter_table("ftns_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ftns_holds_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ftns_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ftns_holds_account_id"))

    op.drop_table("ftns_holds")
    with op.batch_alter_table("ftns_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ftns_entries_transaction_id"))
        batch_op.drop_index("ix_ftns_entries_account_seq")

    op.drop_table("ftns_entries")
    with op.batch_alter_table("ftns_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ftns_transactions_hold_id"))

    op.drop_table("ftns_transactions")
    op.drop_table("ftns_accounts")
