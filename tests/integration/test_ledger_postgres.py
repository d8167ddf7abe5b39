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
