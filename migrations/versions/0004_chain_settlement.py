"""chain settlement

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

import prsm.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_state",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_chain_state")),
    )
    op.create_table(
        "settlement_epochs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("through_entry", sa.Integer(), nullable=False),
        sa.Column("payees", sa.Integer(), nullable=False),
        sa.Column("total", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("nonce", sa.Integer(), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("block_number", sa.Integer(), nullable=True),
        sa.Column("gas_used", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_epochs")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_settlement_epochs_tx_hash")),
    )
    op.create_table(
        "chain_addresses",
        sa.Column("account_id", sa.String(length=160), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("settled_through", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ftns_accounts.id"], name=op.f("fk_chain_addresses_account_id_ftns_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_chain_addresses")),
        sa.UniqueConstraint("address", name=op.f("uq_chain_addresses_address")),
    )
    op.create_table(
        "settlement_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=160), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("amount", prsm.db.models.TokenAmount(precision=78, scale=0), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ftns_accounts.id"], name=op.f("fk_settlement_lines_account_id_ftns_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["epoch_id"],
            ["settlement_epochs.id"],
            name=op.f("fk_settlement_lines_epoch_id_settlement_epochs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
        sa.UniqueConstraint("epoch_id", "account_id", name=op.f("uq_settlement_lines_epoch_id")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_lines_epoch_id"), ["epoch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_epoch_id"))

    op.drop_table("settlement_lines")
    op.drop_table("chain_addresses")
    op.drop_table("settlement_epochs")
    op.drop_table("chain_state")
