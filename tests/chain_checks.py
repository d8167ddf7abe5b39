"""Settlement and deposit rules every chain must hold: run on the in-process EVM (unit) and on a
real anvil node (integration), the same checks."""

from __future__ import annotations

import pytest
from web3 import Web3

from prsm.chain.client import Chain, ChainError
from prsm.chain.settlement import Settlement
from prsm.errors import InvalidInput
from prsm.ftns.ledger import SETTLING, Ledger, UnknownAccount

FTNS = 10**18
PAYEES = {"bob": "0x" + "b0" * 20, "carol": "0x" + "ca" * 20, "dave": "0x" + "da" * 20}


def earn(ledger: Ledger, payouts: dict[str, int], tag: str, payer: str = "alice") -> None:
    """`payer` runs a query whose capture pays `payouts` (the way model owners earn)."""
    ledger.open_account(payer)
    ledger.mint(payer, sum(payouts.values()) + FTNS, f"{tag}-fund")
    hold = ledger.hold(payer, sum(payouts.values()) + 1000, f"{tag}-hold")
    ledger.capture(hold.hold_id, payouts, f"{tag}-capture")


def on_chain(settlement: Settlement, address: str) -> int:
    return settlement.token().functions.balanceOf(Web3.to_checksum_address(address)).call()


def linked(settings, chain: Chain) -> Settlement:
    settlement = Settlement(settings, chain)
    earn(settlement.ledger, {"bob": 3 * FTNS, "carol": 5}, "q1")
    for account in ("bob", "carol"):
        settlement.link(account, PAYEES[account])
    return settlement


def check_settlement_pays_each_payee_its_earnings_once(settings, chain: Chain) -> None:
    settlement = linked(settings, chain)
    ledger = settlement.ledger
    earn(ledger, {"dave": 7}, "q2")  # dave has no address: not paid, and not lost
    report = settlement.run()
    assert report.status == "confirmed" and report.payees == 2 and report.total == 3 * FTNS + 5
    assert on_chain(settlement, PAYEES["bob"]) == 3 * FTNS and on_chain(settlement, PAYEES["carol"]) == 5
    assert ledger.balance("bob") == 0 and ledger.balance(SETTLING) == 0
    assert ledger.balance("alice") > 0  # the payer's refund was not taken as earnings
    assert settlement.run() is None  # nothing new earned: no epoch, no transaction

    earn(ledger, {"bob": 2, "dave": 4}, "q3")
    settlement.link("dave", PAYEES["dave"])  # linked late: all earnings so far are paid
    second = settlement.run()
    assert second.epoch == report.epoch + 1
    assert dict((a, v) for a, _, v in second.lines) == {"bob": 2, "dave": 11}
    assert on_chain(settlement, PAYEES["bob"]) == 3 * FTNS + 2
    assert settlement.reconcile()[0] == []


STEPS = ("opened", "signed", "sent", "mined", "confirmed")


class Crash(Exception):
    pass


def check_a_settler_killed_after_any_step_pays_exactly_once_when_run_again(
    settings, chain: Chain, step
) -> None:
    settlement = linked(settings, chain)

    def crash(name: str) -> None:
        if name == step:
            raise Crash(name)

    with pytest.raises(Crash):
        settlement.run(on_step=crash)
    again = Settlement(settings, chain)  # a new process: nothing kept in memory
    report = again.run() if step != "confirmed" else again.report(1)
    assert report.status == "confirmed" and report.epoch == 1
    assert again.run() is None
    assert on_chain(again, PAYEES["bob"]) == 3 * FTNS and on_chain(again, PAYEES["carol"]) == 5
    assert again.ledger.balance(SETTLING) == 0 and again.ledger.balance("bob") == 0
    assert again.reconcile()[0] == []


def check_a_nonce_taken_by_another_transaction_is_signed_again(settings, chain: Chain) -> None:
    settlement = linked(settings, chain)

    def crash(name: str) -> None:
        if name == "signed":
            raise Crash(name)

    with pytest.raises(Crash):
        settlement.run(on_step=crash)
    settlement.fund_reserve(FTNS)  # the operator's next transaction takes the stored nonce
    report = settlement.run()
    assert report.status == "confirmed" and on_chain(settlement, PAYEES["bob"]) == 3 * FTNS


def check_a_reserve_too_small_refuses_and_keeps_the_epoch_open(settings, chain: Chain) -> None:
    settlement = Settlement(settings, chain)
    reserve = settlement.reserve()
    earn(settlement.ledger, {"bob": reserve + FTNS}, "big")
    settlement.link("bob", PAYEES["bob"])
    with pytest.raises(ChainError, match="reserve holds"):
        settlement.run()
    assert settlement.ledger.balance(SETTLING) == reserve + FTNS  # frozen in the open epoch
    settlement.fund_reserve(2 * FTNS)
    assert settlement.run().status == "confirmed"
    assert on_chain(settlement, PAYEES["bob"]) == reserve + FTNS


def check_deposits_are_credited_once_from_the_last_block(settings, chain: Chain, depositor) -> None:
    settlement = Settlement(settings, chain)
    contracts = settlement.contracts()
    token = settlement.token()
    chain.send(token.functions.mint(depositor.address, 10 * FTNS))
    settlement.ledger.open_account("erin")
    settlement.link("erin", depositor.address)
    chain.send(token.functions.transfer(contracts["settlement"], 4 * FTNS), account=depositor)
    chain.send(token.functions.transfer(contracts["settlement"], 1 * FTNS), account=depositor)
    credited = settlement.scan_deposits()
    assert [c["amount"] for c in credited] == [4 * FTNS, FTNS] and {c["account"] for c in credited} == {
        "erin"
    }
    assert settlement.scan_deposits() == []  # nothing new
    with settlement.engine.begin() as conn:  # replay: the cursor is lost, every block is scanned again
        from prsm.db.models import ChainState

        table = ChainState.__table__
        conn.execute(table.delete().where(table.c.key.like("deposits:%")))
    assert Settlement(settings, chain).scan_deposits() == []
    assert settlement.ledger.balance("erin") == 5 * FTNS
    assert settlement.reconcile()[0] == []


def check_reconcile_prints_every_difference(settings, chain: Chain) -> None:
    settlement = linked(settings, chain)
    settlement.run()
    from prsm.db.models import SettlementLine

    with settlement.engine.begin() as conn:  # the ledger's record of what bob was paid is wrong
        table = SettlementLine.__table__
        conn.execute(table.update().where(table.c.account_id == "bob").values(amount=1))
    differences, facts = settlement.reconcile()
    assert len(differences) == 1 and PAYEES["bob"][2:].lower() in differences[0].lower()
    assert any("reserve on chain" in f for f in facts)


def check_bad_addresses_are_refused(settings, chain: Chain) -> None:
    settlement = linked(settings, chain)
    for bad in ("0x123", "not an address", "0x" + "00" * 20):
        with pytest.raises(InvalidInput):
            settlement.link("bob", bad)
    with pytest.raises(InvalidInput):
        settlement.link("carol", PAYEES["bob"])  # bob's address already
    with pytest.raises(UnknownAccount):
        settlement.link("nobody", PAYEES["dave"])
