"""Contracts, settlement and deposits on the in-process EVM (the embedded default)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from prsm.chain.client import Chain, ChainError
from prsm.chain.settlement import Settlement
from prsm.db.engine import upgrade
from tests import chain_checks

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


@pytest.fixture
def chain():
    with Chain.in_process() as c:
        yield c


@pytest.fixture
def chain_settings(settings):
    upgrade(settings.resolved_database_url)
    return settings


def test_committed_contract_artifacts_match_the_sources():
    # CI installs solc-js and OpenZeppelin (`npm ci --prefix contracts`); the compile is offline.
    assert shutil.which("node"), "node is needed to compile the contracts"
    done = subprocess.run(["node", "compile.js", "--check"], cwd=CONTRACTS, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


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


def test_deposits_are_credited_once_from_the_last_block(chain_settings, chain):
    chain_checks.check_deposits_are_credited_once_from_the_last_block(
        chain_settings, chain, chain.dev_account(1)
    )


def test_reconcile_prints_every_difference(chain_settings, chain):
    chain_checks.check_reconcile_prints_every_difference(chain_settings, chain)


def test_bad_addresses_are_refused(chain_settings, chain):
    chain_checks.check_bad_addresses_are_refused(chain_settings, chain)


def test_the_embedded_chain_survives_a_restart_through_its_journal(chain_settings, tmp_path):
    journal = tmp_path / "journal.jsonl"
    with Chain.in_process(journal) as first:
        settlement = Settlement(chain_settings, first)
        contracts = settlement.contracts()
        chain_checks.earn(settlement.ledger, {"bob": 9}, "q")
        settlement.link("bob", chain_checks.PAYEES["bob"])
        paid = settlement.run()
        with pytest.raises(ChainError, match="another PRSM process"):
            Chain.in_process(journal)  # one process at a time
    with Chain.in_process(journal) as second:
        again = Settlement(chain_settings, second)
        assert again.contracts() == contracts
        assert second.receipt(paid.tx_hash).status == 1
        assert chain_checks.on_chain(again, chain_checks.PAYEES["bob"]) == 9
        assert again.reconcile()[0] == []
