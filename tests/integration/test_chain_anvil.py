"""The chain checks of tests/unit/test_chain.py, against a real anvil node started on loopback."""

import pytest
from eth_account import Account
from pydantic import SecretStr

from prsm.chain.client import Chain
from prsm.chain.reconcile import reconcile
from tests import chain_checks
from tests.services import anvil_node


@pytest.fixture(scope="module")
def node():
    with anvil_node() as (url, keys):
        yield url, keys


@pytest.fixture
def chain_services(services, node):
    # Each test deploys its own contracts on the shared node: a fresh database knows none.
    services.settings.chain_url, services.settings.chain_key = node[0], SecretStr(node[1][0])
    return services


@pytest.fixture
def chain(chain_services):
    with Chain.connect(chain_services.settings) as c:
        assert c.is_dev and c.chain_id == 31337
        yield c


def test_settlement_pays_each_payee_its_earnings_once(chain_services, chain):
    chain_checks.check_settlement_pays_each_payee_its_earnings_once(chain_services, chain)


@pytest.mark.parametrize("step", chain_checks.STEPS)
def test_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(chain_services, chain, step):
    chain_checks.check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
        chain_services, chain, step
    )


def test_a_nonce_taken_by_another_transaction_is_signed_again(chain_services, chain):
    chain_checks.check_a_nonce_taken_by_another_transaction_is_signed_again(chain_services, chain)


def test_a_reserve_too_small_refuses_and_keeps_the_epoch_open(chain_services, chain):
    chain_checks.check_a_reserve_too_small_refuses_and_keeps_the_epoch_open(chain_services, chain)


def test_deposits_are_credited_once_from_the_last_block(chain_services, chain, node):
    depositor = Account.from_key(node[1][1])
    chain_checks.check_deposits_are_credited_once_from_the_last_block(chain_services, chain, depositor)


def test_reconcile_prints_every_difference(chain_services, chain):
    chain_checks.check_reconcile_prints_every_difference(chain_services, chain)


def test_bad_addresses_are_refused(chain_services, chain):
    chain_checks.check_bad_addresses_are_refused(chain_services, chain)


KILLED_SETTLER = """
import os, signal, sys
from pydantic import SecretStr
from prsm.chain.contracts import Contracts
from prsm.chain.epochs import Settler
from prsm.services import Services
from prsm.settings import Settings

settings = Settings(chain_url=sys.argv[1], chain_key=SecretStr(sys.argv[2]), _env_file=None)
with Services(settings) as services:
    settler = Settler(settings, Contracts(services.chain, services.ledger))
    settler.settle(on_step=lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == sys.argv[3] else None)
"""


@pytest.mark.parametrize("step", chain_checks.STEPS[:-1])
def test_a_settler_process_killed_with_sigkill_after_a_step_pays_exactly_once(
    chain_services, chain, node, step, tmp_path
):
    import subprocess
    import sys

    from prsm.ftns.ledger import SETTLING

    settlement = chain_checks.linked(chain_services, chain)
    settlement.contracts.addresses()
    script = tmp_path / "settler.py"
    script.write_text(KILLED_SETTLER)
    env = {"PRSM_DATA_DIR": str(chain_services.settings.data_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(script), node[0], node[1][0], step], env=env, timeout=120)
    assert done.returncode == -9  # killed, not finished
    again = chain_checks.settler(chain_services, chain)
    assert again.settle().status == "confirmed"
    assert chain_checks.on_chain(again.contracts, chain_checks.PAYEES["bob"]) == 3 * chain_checks.FTNS
    assert chain_services.ledger.balance(SETTLING) == 0 and again.settle() is None
    assert reconcile(again.contracts)[0] == []
