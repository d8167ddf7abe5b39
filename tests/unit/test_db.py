import pytest

from tests.migration_checks import (
    assert_no_drift,
    assert_token_amounts_are_exact,
    assert_upgrade_downgrade_upgrade,
)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'm.db'}"


def test_sqlite_models_and_migrations_do_not_drift(sqlite_url):
    assert_no_drift(sqlite_url)


def test_sqlite_upgrade_downgrade_upgrade(sqlite_url):
    assert_upgrade_downgrade_upgrade(sqlite_url)


def test_sqlite_keeps_token_amounts_exact(sqlite_url):
    assert_token_amounts_are_exact(sqlite_url)


def test_a_float_amount_is_refused(sqlite_url):
    from sqlalchemy.exc import StatementError

    from prsm.db.engine import Database, upgrade
    from prsm.db.models import ModelCardRow

    upgrade(sqlite_url)
    with pytest.raises(StatementError, match="int base units"), Database.open(sqlite_url).orm.begin() as s:
        s.add(
            ModelCardRow(
                id="f", kind="tool", description="d", tags=[], owner="o", licence="l",
                price_per_1k_tokens=1.5, price_per_call=0, calls=0, failures=0,
            )
        )  # fmt: skip
