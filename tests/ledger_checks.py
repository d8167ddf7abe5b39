"""Ledger rules every database backend must hold (SQLite in unit, PostgreSQL in integration)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from prsm.db.models import LedgerEntry, LedgerTransaction
from prsm.errors import HoldClosed, IdempotencyConflict, InsufficientFunds, InvalidInput, UnknownAccount
from prsm.ftns.ledger import Ledger, sum_of_entries_per_transaction

FTNS = 10**18


def rows(ledger: Ledger) -> tuple[int, int]:
    with ledger.engine.connect() as conn:
        txns = conn.scalar(select(func.count()).select_from(LedgerTransaction))
        entries = conn.scalar(select(func.count()).select_from(LedgerEntry))
    return txns, entries


def funded(ledger: Ledger, amount: int = 10 * FTNS) -> Ledger:
    ledger.open_account("alice")
    ledger.open_account("bob", "owner")
    ledger.open_account("op", "operator")
    ledger.mint("alice", amount, "faucet-alice")
    return ledger


def check_hold_capture_release_move_exact_amounts(ledger: Ledger) -> None:
    funded(ledger)
    hold = ledger.hold("alice", 3 * FTNS, "q1-hold")
    assert (ledger.balance("alice"), ledger.balance("escrow:alice")) == (7 * FTNS, 3 * FTNS)
    ledger.capture(hold.hold_id, {"bob": FTNS + 1, "op": 7}, "q1-capture")
    assert ledger.balance("bob") == FTNS + 1 and ledger.balance("op") == 7
    assert ledger.balance("alice") == 10 * FTNS - FTNS - 8 and ledger.balance("escrow:alice") == 0
    second = ledger.hold("alice", FTNS, "q2-hold")
    ledger.release(second.hold_id, "q2-release")
    assert ledger.balance("alice") == 10 * FTNS - FTNS - 8
    with pytest.raises(HoldClosed):
        ledger.capture(second.hold_id, {"bob": 1}, "q2-capture")
    assert ledger.total() == 10 * FTNS
    assert set(sum_of_entries_per_transaction(ledger).values()) == {0}


def check_retries_happen_once_and_key_reuse_is_refused(ledger: Ledger) -> None:
    funded(ledger)
    first = ledger.transfer("alice", "bob", 5, "pay-1")
    before = rows(ledger)
    again = ledger.transfer("alice", "bob", 5, "pay-1")
    assert again.transaction_id == first.transaction_id and again.replayed
    assert rows(ledger) == before and ledger.balance("bob") == 5
    with pytest.raises(IdempotencyConflict):
        ledger.transfer("alice", "bob", 6, "pay-1")
    assert rows(ledger) == before


def check_bad_operations_write_nothing(ledger: Ledger) -> None:
    funded(ledger, 100)
    before = rows(ledger)
    for bad in (0, -1, 1.5, "abc", True, None):
        with pytest.raises(InvalidInput):
            ledger.transfer("alice", "bob", bad, f"bad-{bad!r}")
    with pytest.raises(InsufficientFunds) as info:
        ledger.transfer("alice", "bob", 101, "overdraft")
    assert (info.value.needed, info.value.available) == (101, 100)
    with pytest.raises(UnknownAccount):
        ledger.transfer("alice", "nobody", 1, "to-nobody")
    hold = ledger.hold("alice", 50, "h")
    with pytest.raises(InsufficientFunds):
        ledger.capture(hold.hold_id, {"bob": 51}, "over-capture")
    assert rows(ledger)[0] == before[0] + 1  # only the hold
    assert ledger.balance("alice") == 50 and ledger.total() == 100


def check_concurrent_charges_never_overdraw(
    ledger: Ledger, attempts: int = 200, affordable: int = 50
) -> None:
    """`attempts` concurrent holds of 1 unit against `affordable` units: exactly that many succeed."""
    funded(ledger, affordable)

    def charge(i: int) -> str:
        try:
            hold = ledger.hold("alice", 1, f"c-{i}")
            ledger.capture(hold.hold_id, {"bob": 1}, f"c-{i}-capture")
            return "ok"
        except InsufficientFunds:
            return "refused"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(charge, range(attempts)))
    assert outcomes.count("ok") == affordable
    assert ledger.balance("alice") == 0 and ledger.balance("bob") == affordable
    assert ledger.total() == affordable
    assert set(sum_of_entries_per_transaction(ledger).values()) == {0}
