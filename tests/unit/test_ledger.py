import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prsm.errors import InvalidInput, PRSMError
from prsm.ftns.amounts import format_ftns, parse_ftns
from prsm.ftns.ledger import sum_of_entries_per_transaction
from prsm.services import Services
from prsm.settings import Settings
from tests import ledger_checks


@pytest.fixture
def ledger(services):
    return services.ledger


def test_hold_capture_release_move_exact_amounts(ledger):
    ledger_checks.check_hold_capture_release_move_exact_amounts(ledger)


def test_retries_happen_once_and_key_reuse_is_refused(ledger):
    ledger_checks.check_retries_happen_once_and_key_reuse_is_refused(ledger)


def test_bad_operations_write_nothing(ledger):
    ledger_checks.check_bad_operations_write_nothing(ledger)


def test_200_concurrent_charges_never_overdraw_sqlite(ledger):
    ledger_checks.check_concurrent_charges_never_overdraw(ledger)


@pytest.mark.parametrize(
    "text,units", [("1", 10**18), ("1.5", 15 * 10**17), ("0.000000000000000001", 1), ("2 FTNS", 2 * 10**18)]
)
def test_ftns_amounts_parse_exactly(text, units):
    assert parse_ftns(text) == units
    assert parse_ftns(format_ftns(units)) == units


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1e3", "0.0000000000000000001", "1.", ""])
def test_inexact_or_non_positive_amounts_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_ftns(text)


ACCOUNTS = ["a", "b", "c"]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("mint"), st.sampled_from(ACCOUNTS), st.integers(1, 10**21)),
        st.tuples(st.just("burn"), st.sampled_from(ACCOUNTS), st.integers(1, 10**21)),
        st.tuples(
            st.just("transfer"), st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.integers(1, 10**21)
        ),
        st.tuples(st.just("hold"), st.sampled_from(ACCOUNTS), st.integers(1, 10**21), st.integers(0, 10**21)),
        st.tuples(st.just("retry"), st.integers(0, 50)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_balances_change_only_by_mint_and_burn_whatever_the_sequence(migrated_sqlite, tmp_path_factory, ops):
    folder = tmp_path_factory.mktemp("prop")
    shutil.copy(migrated_sqlite, folder / "prsm.db")  # migrated once: each example starts from a copy
    with Services(Settings(data_dir=folder, _env_file=None)) as services:
        check_invariants_along(services.ledger, ops)


def check_invariants_along(ledger, ops) -> None:
    for account in ACCOUNTS:
        ledger.open_account(account)
    minted = burned = 0
    done: list[tuple] = []
    for n, op in enumerate(ops):
        if op[0] == "retry":
            if not done:
                continue
            op, n = done[op[1] % len(done)]
        try:
            if op[0] == "mint":
                r = ledger.mint(op[1], op[2], f"k{n}")
                minted += 0 if r.replayed else op[2]
            elif op[0] == "burn":
                r = ledger.burn(op[1], op[2], f"k{n}")
                burned += 0 if r.replayed else op[2]
            elif op[0] == "transfer":
                ledger.transfer(op[1], op[2], op[3], f"k{n}")
            elif op[0] == "hold":
                hold = ledger.hold(op[1], op[2], f"k{n}")
                ledger.capture(hold.hold_id, {"b": op[3]} if op[3] else {}, f"k{n}-capture")
            done.append((op, n))
        except PRSMError:
            pass  # refused operations must leave no trace: checked by the invariants below
        assert ledger.total() == minted - burned
        assert ledger.total(include_system=True) == 0
        assert all(ledger.balance(a) >= 0 for a in ACCOUNTS)
    assert set(sum_of_entries_per_transaction(ledger).values()) <= {0}


def test_without_the_write_lock_concurrent_charges_would_overdraw(services):
    # The guard is what makes the concurrency test pass: with SQLite's deferred BEGIN, two
    # charges read the same balance and both write.
    from dataclasses import replace

    from prsm.db.engine import make_engine
    from prsm.ftns.ledger import Ledger

    db = services.db
    unlocked = replace(db, writer=make_engine(db.url))  # BEGIN without the write lock
    with pytest.raises(AssertionError):
        ledger_checks.check_concurrent_charges_never_overdraw(Ledger(unlocked))
    unlocked.writer.dispose()


def test_a_batch_commits_once_and_a_refused_call_rolls_back_alone(ledger):
    from prsm.errors import HoldClosed, InsufficientFunds, UnknownAccount
    from prsm.ftns.ledger import (
        capture_op,
        hold_id_for,
        hold_op,
        mint_op,
        release_op,
        transfer_op,
    )

    ledger_checks.funded(ledger, 100)
    before = ledger_checks.rows(ledger)
    results = ledger.post_many(
        [
            transfer_op("alice", "bob", 30, "b1"),
            transfer_op("alice", "bob", 500, "b2"),  # overdraft: refused, alone
            transfer_op("alice", "bob", 30, "b1"),  # same key in the same batch: a replay
            hold_op("alice", 20, "b3"),
            mint_op("nobody", 5, "b4"),  # unknown account: refused, alone
            capture_op(hold_id_for("b3"), {"bob": 5, "new-owner": 1}, "b5"),  # hold from this batch
            release_op(hold_id_for("b3"), "b6"),  # already captured above
            hold_op("alice", 51, "b7"),  # 70 - 20 + 14 = 64 left... after b3 and b5: 50 + 14
        ]
    )
    assert results[0].transaction_id == results[2].transaction_id and results[2].replayed
    assert isinstance(results[1], InsufficientFunds)
    assert isinstance(results[4], UnknownAccount) and isinstance(results[6], HoldClosed)
    assert not isinstance(results[5], Exception) and not isinstance(results[7], Exception)
    assert ledger.balance("alice") == 100 - 30 - 6 - 51 and ledger.balance("bob") == 35
    assert ledger.balance("new-owner") == 1 and ledger.balance("escrow:alice") == 51
    assert ledger_checks.rows(ledger)[0] == before[0] + 4
    assert set(sum_of_entries_per_transaction(ledger).values()) == {0}
    assert ledger.total() == 100
