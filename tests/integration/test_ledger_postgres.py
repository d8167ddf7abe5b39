"""The ledger rules on a real PostgreSQL server (row locks instead of SQLite's write lock)."""

import pytest

from prsm.services import Services
from tests import ledger_checks
from tests.services import fresh_database


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


def test_a_due_job_runs_once_across_replicas_postgres(pg_services):
    from tests import ops_checks

    ops_checks.check_a_due_job_runs_once_across_replicas(pg_services)


@pytest.fixture
def pg_fresh(postgres_url, tmp_path):
    """A second node: its own empty PostgreSQL database and data folder, for restores."""
    from prsm.settings import Settings
    from tests.conftest import MODEL_DIR

    settings = Settings(
        data_dir=tmp_path / "restored",
        model_dir=MODEL_DIR,
        database_url=fresh_database(postgres_url),
        _env_file=None,
    )
    with Services(settings) as services:
        yield services


def test_a_restored_node_has_the_same_state_postgres(pg_services, pg_fresh, tmp_path):
    from tests import backup_checks

    backup_checks.check_a_restored_node_has_the_same_state(pg_services, pg_fresh, tmp_path / "backup")


def test_a_backup_taken_under_load_is_consistent_postgres(pg_services, pg_fresh, tmp_path):
    from tests import backup_checks

    backup_checks.check_a_backup_taken_under_load_is_consistent(pg_services, pg_fresh, tmp_path / "backup")


def test_concurrent_grades_are_all_counted_postgres(pg_services):
    from tests.quality_checks import check_concurrent_grades_are_all_counted

    check_concurrent_grades_are_all_counted(pg_services)


def test_stats_read_postgresql_in_place_with_exact_amounts(pg_services):
    """DuckDB's PostgreSQL scanner over the same records as SQLite's (tests/unit/test_stats.py):
    NUMERIC(78, 0) amounts arrive exact, past 2^64 too."""
    import asyncio

    from sqlalchemy import select

    from prsm import stats
    from prsm.db.models import QuerySession
    from prsm.nwtn.route import Router
    from prsm.registry import DEFAULT_MODEL_ID
    from tests.conftest import orchestrator
    from tests.fakes import EchoLM, HashingEmbedder

    registry = pg_services.registry
    registry.ensure_defaults()
    pg_services.models.host(DEFAULT_MODEL_ID, EchoLM())
    nwtn = orchestrator(pg_services, Router(registry, HashingEmbedder()), pg_services.models)
    for prompt in ("In one sentence, what is entropy?", "Convert 5 km to miles"):
        asyncio.run(nwtn.query(prompt, "alice"))
    big = 3 * 10**24 + 7  # 3,000,000 FTNS and 7 base units: past a double's 2^53 and 2^64
    pg_services.ledger.open_account("whale")
    pg_services.ledger.mint("whale", big, "whale-mint")
    with pg_services.db.orm() as s:
        charged = sum(x.charged for x in s.scalars(select(QuerySession)).all())
    con = stats.connect(pg_services.settings)
    (day,) = stats.queries(con, stats.since(1))
    assert day["queries"] == 2 and int(day["charged"]["base_units"]) == charged
    rows = stats.subtasks(con, stats.since(1), ["model"])
    assert {r["model"] for r in rows} == {DEFAULT_MODEL_ID, "pint-units"}
    (balance,) = con.execute(
        "SELECT CAST(balance AS HUGEINT) FROM ftns_accounts WHERE id = 'whale'"
    ).fetchone()
    assert int(balance) == big
