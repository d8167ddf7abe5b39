"""Settlement and deposit rules every chain must hold: run on the in-process EVM (unit) and on a
real anvil node (integration), the same checks."""

from __future__ import annotations

import pytest
from web3 import Web3

from prsm.chain.client import Chain
from prsm.chain.contracts import Contracts
from prsm.chain.deposits import scan_deposits
from prsm.chain.epochs import Settler
from prsm.chain.links import link
from prsm.chain.reconcile import reconcile
from prsm.errors import ChainError, InvalidInput, UnknownAccount
from prsm.ftns.ledger import SETTLING, Ledger

FTNS = 10**18
PAYEES = {"bob": "0x" + "b0" * 20, "carol": "0x" + "ca" * 20, "dave": "0x" + "da" * 20}


def earn(ledger: Ledger, payouts: dict[str, int], tag: str, payer: str = "alice") -> None:
    """`payer` runs a query whose capture pays `payouts` (the way model owners earn)."""
    ledger.open_account(payer)
    ledger.mint(payer, sum(payouts.values()) + FTNS, f"{tag}-fund")
    hold = ledger.hold(payer, sum(payouts.values()) + 1000, f"{tag}-hold")
    ledger.capture(hold.hold_id, payouts, f"{tag}-capture")


def on_chain(contracts: Contracts, address: str) -> int:
    return contracts.token().functions.balanceOf(Web3.to_checksum_address(address)).call()


def settler(services, chain: Chain) -> Settler:
    """What a settling process builds: the chain's contracts for this database, and a settler."""
    return Settler(services.settings, Contracts(chain, services.ledger))


def linked(services, chain: Chain) -> Settler:
    earn(services.ledger, {"bob": 3 * FTNS, "carol": 5}, "q1")
    for account in ("bob", "carol"):
        link(services.ledger, account, PAYEES[account])
    return settler(services, chain)


def check_settlement_pays_each_payee_its_earnings_once(services, chain: Chain) -> None:
    settlement = linked(services, chain)
    ledger, contracts = services.ledger, settlement.contracts
    earn(ledger, {"dave": 7}, "q2")  # dave has no address: not paid, and not lost
    report = settlement.settle()
    assert report.status == "confirmed" and report.payees == 2 and report.total == 3 * FTNS + 5
    assert on_chain(contracts, PAYEES["bob"]) == 3 * FTNS and on_chain(contracts, PAYEES["carol"]) == 5
    assert ledger.balance("bob") == 0 and ledger.balance(SETTLING) == 0
    assert ledger.balance("alice") > 0  # the payer's refund was not taken as earnings
    assert settlement.settle() is None  # nothing new earned: no epoch, no transaction

    earn(ledger, {"bob": 2, "dave": 4}, "q3")
    link(ledger, "dave", PAYEES["dave"])  # linked late: all earnings so far are paid
    second = settlement.settle()
    assert second.epoch == report.epoch + 1
    assert dict((a, v) for a, _, v in second.lines) == {"bob": 2, "dave": 11}
    assert on_chain(contracts, PAYEES["bob"]) == 3 * FTNS + 2
    assert reconcile(contracts)[0] == []


STEPS = ("opened", "signed", "sent", "mined", "confirmed")


class Crash(Exception):
    pass


def check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
    services, chain: Chain, step
) -> None:
    settlement = linked(services, chain)

    def crash(name: str) -> None:
        if name == step:
            raise Crash(name)

    with pytest.raises(Crash):
        settlement.settle(on_step=crash)
    again = settler(services, chain)  # a new process: nothing kept in memory
    report = again.settle() if step != "confirmed" else again.report(1)
    assert report.status == "confirmed" and report.epoch == 1
    assert again.settle() is None
    assert (
        on_chain(again.contracts, PAYEES["bob"]) == 3 * FTNS
        and on_chain(again.contracts, PAYEES["carol"]) == 5
    )
    assert services.ledger.balance(SETTLING) == 0 and services.ledger.balance("bob") == 0
    assert reconcile(again.contracts)[0] == []


def check_a_nonce_taken_by_another_transaction_is_signed_again(services, chain: Chain) -> None:
    settlement = linked(services, chain)

    def crash(name: str) -> None:
        if name == "signed":
            raise Crash(name)

    with pytest.raises(Crash):
        settlement.settle(on_step=crash)
    settlement.contracts.fund_reserve(FTNS)  # the operator's next transaction takes the stored nonce
    report = settlement.settle()
    assert report.status == "confirmed" and on_chain(settlement.contracts, PAYEES["bob"]) == 3 * FTNS


def check_a_reserve_too_small_refuses_and_keeps_the_epoch_open(services, chain: Chain) -> None:
    settlement = settler(services, chain)
    reserve = settlement.contracts.reserve()
    earn(services.ledger, {"bob": reserve + FTNS}, "big")
    link(services.ledger, "bob", PAYEES["bob"])
    with pytest.raises(ChainError, match="reserve holds"):
        settlement.settle()
    assert services.ledger.balance(SETTLING) == reserve + FTNS  # frozen in the open epoch
    settlement.contracts.fund_reserve(2 * FTNS)
    assert settlement.settle().status == "confirmed"
    assert on_chain(settlement.contracts, PAYEES["bob"]) == reserve + FTNS


def check_deposits_are_credited_once_from_the_last_block(services, chain: Chain, depositor) -> None:
    contracts = Contracts(chain, services.ledger)
    addresses = contracts.addresses()
    token = contracts.token()
    chain.send(token.functions.mint(depositor.address, 10 * FTNS))
    services.ledger.open_account("erin")
    link(services.ledger, "erin", depositor.address)
    chain.send(token.functions.transfer(addresses["settlement"], 4 * FTNS), account=depositor)
    chain.send(token.functions.transfer(addresses["settlement"], 1 * FTNS), account=depositor)
    credited = scan_deposits(contracts, confirmations=1)
    assert [c["amount"] for c in credited] == [4 * FTNS, FTNS]
    assert {c["account"] for c in credited} == {"erin"}
    assert scan_deposits(contracts, confirmations=1) == []  # nothing new
    with services.ledger.engine.begin() as conn:  # replay: the cursor is lost, every block is scanned again
        from prsm.db.models import ChainState

        table = ChainState.__table__
        conn.execute(table.delete().where(table.c.key.like("deposits:%")))
    assert scan_deposits(Contracts(chain, services.ledger), confirmations=1) == []
    assert services.ledger.balance("erin") == 5 * FTNS
    assert reconcile(contracts)[0] == []


def check_reconcile_prints_every_difference(services, chain: Chain) -> None:
    settlement = linked(services, chain)
    settlement.settle()
    from prsm.db.models import SettlementLine

    with services.ledger.engine.begin() as conn:  # the ledger's record of what bob was paid is wrong
        table = SettlementLine.__table__
        conn.execute(table.update().where(table.c.account_id == "bob").values(amount=1))
    differences, facts = reconcile(settlement.contracts)
    assert len(differences) == 1 and PAYEES["bob"][2:].lower() in differences[0].lower()
    assert any("reserve on chain" in f for f in facts)


def check_bad_addresses_are_refused(services, chain: Chain) -> None:
    linked(services, chain)
    for bad in ("0x123", "not an address", "0x" + "00" * 20):
        with pytest.raises(InvalidInput):
            link(services.ledger, "bob", bad)
    with pytest.raises(InvalidInput):
        link(services.ledger, "carol", PAYEES["bob"])  # bob's address already
    with pytest.raises(UnknownAccount):
        link(services.ledger, "nobody", PAYEES["dave"])
