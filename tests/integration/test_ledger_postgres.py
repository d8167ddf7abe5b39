"""The ledger rules on a real PostgreSQL server (row locks instead of SQLite's write lock)."""

import uuid

import pytest
from sqlalchemy import create_engine, text

from prsm.db.engine import upgrade
from prsm.ftns.ledger import Ledger
from tests import ledger_checks


@pytest.fixture
def ledger(postgres_url):
    # A fresh database per test on the session's server.
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield Ledger(url)
    admin.dispose()


def test_hold_capture_release_move_exact_amounts_postgres(ledger):
    ledger_checks.check_hold_capture_release_move_exact_amounts(ledger)


def test_retries_happen_once_and_key_reuse_is_refused_postgres(ledger):
    ledger_checks.check_retries_happen_once_and_key_reuse_is_refused(ledger)


def test_bad_operations_write_nothing_postgres(ledger):
    ledger_checks.check_bad_operations_write_nothing(ledger)


def test_200_concurrent_charges_never_overdraw_postgres(ledger):
    ledger_checks.check_concurrent_charges_never_overdraw(ledger)


def test_settlement_and_a_crashed_settler_on_postgres(ledger, settings):
    # Settlement's own transactions (epoch open under a table lock, confirm) on PostgreSQL,
    # with the in-process chain.
    from prsm.chain.client import Chain
    from tests import chain_checks

    settings.database_url = ledger.engine.url.render_as_string(hide_password=False)
    with Chain.in_process() as chain:
        chain_checks.check_settlement_pays_each_payee_its_earnings_once(settings, chain)
    with Chain.in_process() as chain:
        settings.database_url = _fresh(settings.database_url)
        chain_checks.check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
            settings, chain, "sent"
        )


def _fresh(url: str) -> str:
    name = f"settle_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    fresh = url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(fresh)
    return fresh
