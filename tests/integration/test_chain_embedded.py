"""Contracts, settlement and deposits on the in-process EVM (the embedded default), and the
committed contract artifacts against their sources (solc-js from npm)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from prsm.chain.client import Chain
from prsm.chain.contracts import Contracts
from prsm.chain.links import link
from prsm.chain.reconcile import reconcile
from prsm.errors import ChainError
from tests import chain_checks

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


@pytest.fixture
def chain():
    with Chain.in_process() as c:
        yield c


def test_committed_contract_artifacts_match_the_sources():
    # CI installs solc-js and OpenZeppelin (`npm ci --prefix contracts`); the compile is offline.
    assert shutil.which("node"), "node is needed to compile the contracts"
    done = subprocess.run(["node", "compile.js", "--check"], cwd=CONTRACTS, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_settlement_pays_each_payee_its_earnings_once(services, chain):
    chain_checks.check_settlement_pays_each_payee_its_earnings_once(services, chain)


@pytest.mark.parametrize("step", chain_checks.STEPS)
def test_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(services, chain, step):
    chain_checks.check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(services, chain, step)


def test_a_nonce_taken_by_another_transaction_is_signed_again(services, chain):
    chain_checks.check_a_nonce_taken_by_another_transaction_is_signed_again(services, chain)


def test_a_reserve_too_small_refuses_and_keeps_the_epoch_open(services, chain):
    chain_checks.check_a_reserve_too_small_refuses_and_keeps_the_epoch_open(services, chain)


def test_deposits_are_credited_once_from_the_last_block(services, chain):
    chain_checks.check_deposits_are_credited_once_from_the_last_block(services, chain, chain.dev_account(1))


def test_reconcile_prints_every_difference(services, chain):
    chain_checks.check_reconcile_prints_every_difference(services, chain)


def test_bad_addresses_are_refused(services, chain):
    chain_checks.check_bad_addresses_are_refused(services, chain)


def test_the_embedded_chain_survives_a_restart_through_its_journal(services, tmp_path):
    journal = tmp_path / "journal.jsonl"
    with Chain.in_process(journal) as first:
        settlement = chain_checks.settler(services, first)
        addresses = settlement.contracts.addresses()
        chain_checks.earn(services.ledger, {"bob": 9}, "q")
        link(services.ledger, "bob", chain_checks.PAYEES["bob"])
        paid = settlement.settle()
        with pytest.raises(ChainError, match="another PRSM process"):
            Chain.in_process(journal)  # one process at a time
    with Chain.in_process(journal) as second:
        again = Contracts(second, services.ledger)
        assert again.addresses() == addresses
        assert second.receipt(paid.tx_hash).status == 1
        assert chain_checks.on_chain(again, chain_checks.PAYEES["bob"]) == 9
        assert reconcile(again)[0] == []
