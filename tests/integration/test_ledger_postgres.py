"""The ledger rules on a real PostgreSQL server (row locks instead of SQLite's write lock)."""

import uuid

import pytest
from sqlalchemy import create_engine, text

from prsm.services import Services
from tests import ledger_checks


def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the session's server; its URL."""
    name = f"prsm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def pg_services(postgres_url, settings):
    settings.database_url = fresh_database(postgres_url)
    with Services.from_settings(settings, upgrade=True) as services:
        yield services


@pytest.fixture
def ledger(pg_services):
    return pg_services.ledger


def test_hold_capture_release_move_exact_amounts_postgres(ledger):
    ledger_checks.check_hold_capture_release_move_exact_amounts(ledger)


def test_retries_happen_once_and_key_reuse_is_refused_postgres(ledger):
    ledger_checks.check_retries_happen_once_and_key_reuse_is_refused(ledger)


def test_bad_operations_write_nothing_postgres(ledger):
    ledger_checks.check_bad_operations_write_nothing(ledger)


def test_200_concurrent_charges_never_overdraw_postgres(ledger):
    ledger_checks.check_concurrent_charges_never_overdraw(ledger)


def test_settlement_and_a_crashed_settler_on_postgres(pg_services, postgres_url, settings):
    # Settlement's own transactions (epoch open under a table lock, confirm) on PostgreSQL,
    # with the in-process chain.
    from prsm.chain.client import Chain
    from tests import chain_checks

    with Chain.in_process() as chain:
        chain_checks.check_settlement_pays_each_payee_its_earnings_once(pg_services, chain)
    settings.database_url = fresh_database(postgres_url)
    with Chain.in_process() as chain, Services.from_settings(settings, upgrade=True) as services:
        chain_checks.check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
            services, chain, "sent"
        )
