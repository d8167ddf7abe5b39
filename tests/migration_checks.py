"""The migration checks every database backend must pass (SQLite in unit, PostgreSQL in integration)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from prsm.db.engine import Database, current_revision, downgrade, make_engine, upgrade
from prsm.db.models import Base, ModelCardRow

TABLES = {"model_cards", "sessions", "plan_tasks", "reasoning_steps", "safety_flags", "ftns_accounts",
          "ftns_transactions", "ftns_entries", "ftns_holds"}  # fmt: skip


def assert_no_drift(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def assert_upgrade_downgrade_upgrade(url: str) -> None:
    upgrade(url)
    assert current_revision(url) is not None
    downgrade(url, "base")
    engine = make_engine(url)
    assert TABLES.isdisjoint(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def assert_token_amounts_are_exact(url: str) -> None:
    upgrade(url)
    db = Database.open(url)
    amount = 123_456_789 * 10**18 + 1  # past 2^64 and past a float's 53 bits
    with db.orm.begin() as s:
        s.add(
            ModelCardRow(
                id="exact", kind="tool", description="d", tags=[], owner="o", licence="l",
                price_per_1k_tokens=amount, price_per_call=0, calls=0, failures=0,
            )
        )  # fmt: skip
    with db.orm() as s:
        assert s.get(ModelCardRow, "exact").price_per_1k_tokens == amount
    db.dispose()
