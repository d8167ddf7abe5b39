"""The chain checks of tests/unit/test_chain.py, against a real anvil node started on loopback."""

import pytest
from eth_account import Account
from pydantic import SecretStr

from prsm.chain.client import Chain
from prsm.db.engine import upgrade
from tests import chain_checks
from tests.services import anvil_node


@pytest.fixture(scope="module")
def node():
    with anvil_node() as (url, keys):
        yield url, keys


@pytest.fixture
def chain_settings(settings, node):
    # Each test deploys its own contracts on the shared node: a fresh database knows none.
    upgrade(settings.resolved_database_url)
    settings.chain_url, settings.chain_key = node[0], SecretStr(node[1][0])
    return settings


@pytest.fixture
def chain(chain_settings):
    with Chain.connect(chain_settings) as c:
        assert c.is_dev and c.chain_id == 31337
        yield c


def test_settlement_pays_each_payee_its_earnings_once(chain_settings, chain):
    chain_checks.check_settlement_pays_each_payee_its_earnings_once(chain_settings, chain)


@pytest.mark.parametrize("step", chain_checks.STEPS)
def test_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(chain_settings, chain, step):
    chain_checks.check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
        chain_settings, chain, step
    )


def test_a_nonce_taken_by_another_transaction_is_signed_again(chain_settings, chain):
    chain_checks.check_a_nonce_taken_by_another_transaction_is_signed_again(chain_settings, chain)


def test_a_reserve_too_small_refuses_and_keeps_the_epoch_open(chain_settings, chain):
    chain_checks.check_a_reserve_too_small_refuses_and_keeps_the_epoch_open(chain_settings, chain)


def test_deposits_are_credited_once_from_the_last_block(chain_settings, chain, node):
    depositor = Account.from_key(node[1][1])
    chain_checks.check_deposits_are_credited_once_from_the_last_block(chain_settings, chain, depositor)


def test_reconcile_prints_every_difference(chain_settings, chain):
    chain_checks.check_reconcile_prints_every_difference(chain_settings, chain)


def test_bad_addresses_are_refused(chain_settings, chain):
    chain_checks.check_bad_addresses_are_refused(chain_settings, chain)
