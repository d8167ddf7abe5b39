"""The same migration checks as on SQLite, on a real PostgreSQL server."""

from tests.migration_checks import (
    assert_no_drift,
    assert_token_amounts_are_exact,
    assert_upgrade_downgrade_upgrade,
)


def test_postgres_upgrade_downgrade_upgrade(postgres_url):
    assert_upgrade_downgrade_upgrade(postgres_url)


def test_postgres_models_and_migrations_do_not_drift(postgres_url):
    assert_no_drift(postgres_url)


def test_postgres_keeps_token_amounts_exact(postgres_url):
    assert_token_amounts_are_exact(postgres_url)
