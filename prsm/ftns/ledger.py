"""The FTNS ledger: double-entry accounts in the database, exact integer amounts, idempotent
operations, no negative balance ever (also under concurrency, on SQLite and PostgreSQL) but the
two kinds made for it: issuance, and a peer node's account down to its credit.

Every operation is one transaction row plus entries that sum to zero. Minting and burning move
funds against the `ftns:issuance` account, allowed below zero without bound; so the sum of all
other balances changes only by mint and burn entries. A peer node's account (`peer:<address>`,
prsm/federation/) may go below zero by at most the ledger's `peer_credit`: what that node owes
this one until its settlement pays; a payment in can never be refused. A hold moves funds from a user to the
user's escrow account; capture pays out of escrow and returns the rest; release returns it all.

Operations are values (`Op`, built by `mint_op`, `hold_op`, ...) posted in batches: `post_many`
reads every account, hold and idempotency key a batch touches in one query each, applies the
operations one by one in memory (a refused one fails alone and changes nothing), then writes
all rows with one executemany per table. A single operation is a batch of one. The query path
posts its holds and captures in the same transaction as the session rows (prsm/sessions.py), so
charging a query costs no commit of its own.

Concurrency. The balance check and the balance write must not interleave with another writer:
- SQLite: the ledger's engine begins every transaction with BEGIN IMMEDIATE, which takes the
  database's single write lock up front. A conditional UPDATE cannot be used instead: SQLite has
  no exact integer above 2^63 (9.2 FTNS), so amounts are stored as text and checked in Python.
- PostgreSQL: the accounts and holds a batch touches are locked with SELECT ... FOR UPDATE, in
  id order, so two batches moving funds in opposite directions cannot deadlock.

Idempotency. Each operation carries a key; the key is unique in `ftns_transactions`. A retry with
the same key and the same request returns the first result and writes nothing; the same key with
a different request is refused. Two concurrent first attempts: one commits, the other hits the
unique constraint, rolls back, retries each of its operations alone, and the loser's retry
returns the winner's result.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from prsm.db.engine import Database
from prsm.db.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransaction, iso_utc, utcnow
from prsm.errors import (
    HoldClosed,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    PRSMError,
    UnknownAccount,
)
from prsm.ftns.amounts import check_amount, format_ftns
from prsm.types import ACCOUNT_ID

ISSUANCE = "ftns:issuance"  # system accounts have a prefix no user account id can have
TREASURY = "ftns:treasury"
SETTLING = "ftns:settling"  # earnings frozen in an open settlement epoch, until paid on chain


class OpKind(StrEnum):
    MINT = "mint"
    BURN = "burn"
    TRANSFER = "transfer"
    CREDIT = "credit"  # a reward paid from the treasury
    HOLD = "hold"
    CAPTURE = "capture"  # pay out of a hold, return the rest
    RELEASE = "release"  # return a hold whole


class AccountKind(StrEnum):
    USER = "user"
    OWNER = "owner"  # of models: paid for their use
    OPERATOR = "operator"
    TREASURY = "treasury"
    ESCROW = "escrow"  # a user's held funds
    ISSUANCE = "issuance"  # below zero without bound: minus all that was minted
    SETTLING = "settling"
    # Another PRSM node (prsm/federation/): paid for what it answers for this node's users, and
    # charged for what this node answers for it. It may owe up to the ledger's `peer_credit`
    # (its balance that far below zero) until its next settlement pays this node on chain.
    PEER = "peer"


class HoldStatus(StrEnum):
    OPEN = "open"
    CAPTURED = "captured"
    RELEASED = "released"


SYSTEM_ACCOUNTS = {
    ISSUANCE: AccountKind.ISSUANCE,
    TREASURY: AccountKind.TREASURY,
    SETTLING: AccountKind.SETTLING,
}
OPENABLE = (AccountKind.USER, AccountKind.OWNER, AccountKind.OPERATOR, AccountKind.TREASURY, AccountKind.PEER)
# A peer node's account: named by its operator's chain address, which no user account id can be.
PEER_ACCOUNT = re.compile(r"^peer:0x[0-9a-f]{40}$")


def peer_account(operator: str) -> str:
    """The ledger account of the peer node whose operator address is `operator`."""
    return f"peer:{operator.lower()}"


CLOSING = (OpKind.CAPTURE, OpKind.RELEASE)


@dataclass(frozen=True)
class Receipt:
    """What an operation did: its transaction, and the hold it opened or closed, if any."""

    transaction_id: str
    kind: str
    idempotency_key: str
    hold_id: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Op:
    """One ledger operation, validated, not yet posted. Build it with the `*_op` functions.

    `moves` are (account, signed amount) pairs summing to zero; a capture or release has none
    until posting, because its moves depend on the hold (read in the same transaction).
    """

    kind: OpKind
    key: str
    memo: str | None
    moves: tuple[tuple[str, int], ...] = ()
    hold_id: str | None = None
    payouts: tuple[tuple[str, int], ...] = ()
    digest: str = field(default="", compare=False)
    # The caller made the key from an id it just generated (a new session's uuid4), so it cannot
    # be a retry: the replay lookup is skipped. The unique index still refuses a duplicate.
    fresh: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or len(self.key) > 200:
            raise InvalidInput("an idempotency key of 1 to 200 characters is required", "idempotency_key")
        if self.kind in CLOSING:
            request = {"hold_id": self.hold_id, "payouts": {a: str(v) for a, v in sorted(self.payouts)}}
        else:
            request = {"moves": [(a, str(v)) for a, v in self.moves]}
        body = json.dumps([self.kind, request, self.memo], sort_keys=True).encode()
        object.__setattr__(self, "digest", hashlib.sha256(body).hexdigest())


def escrow_of(account_id: str) -> str:
    return f"escrow:{account_id}"


def hold_id_for(key: str) -> str:
    """A hold's id follows from its key, so a caller knows it before the hold is posted."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"prsm-hold:{key}"))


def mint_op(account_id: str, amount: int, key: str, memo: str | None = None) -> Op:
    amount = check_amount(amount)
    return Op(OpKind.MINT, key, memo, ((ISSUANCE, -amount), (account_id, amount)))


def burn_op(account_id: str, amount: int, key: str, memo: str | None = None) -> Op:
    amount = check_amount(amount)
    return Op(OpKind.BURN, key, memo, ((account_id, -amount), (ISSUANCE, amount)))


def transfer_op(src: str, dst: str, amount: int, key: str, memo: str | None = None) -> Op:
    amount = check_amount(amount)
    if src == dst:
        raise InvalidInput("source and destination are the same account", "to")
    return Op(OpKind.TRANSFER, key, memo, ((src, -amount), (dst, amount)))


def credit_op(account_id: str, amount: int, key: str, memo: str | None = None) -> Op:
    """A reward paid from the treasury."""
    amount = check_amount(amount)
    return Op(OpKind.CREDIT, key, memo, ((TREASURY, -amount), (account_id, amount)))


def hold_op(account_id: str, amount: int, key: str, memo: str | None = None, fresh: bool = False) -> Op:
    amount = check_amount(amount)
    moves = ((account_id, -amount), (escrow_of(account_id), amount))
    return Op(OpKind.HOLD, key, memo, moves, hold_id=hold_id_for(key), fresh=fresh)


def capture_op(
    hold_id: str, payouts: dict[str, int], key: str, memo: str | None = None, fresh: bool = False
) -> Op:
    """Charge a hold: pay `payouts` out of it and return what is left to the holder. A payee
    without an account gets one (kind owner): rewards go to model owners and operators whose
    ids come from model cards and settings, not from the caller."""
    for account_id, amount in payouts.items():
        check_amount(amount, f"payouts.{account_id}")
        if (
            not (ACCOUNT_ID.match(account_id) or PEER_ACCOUNT.match(account_id))
            and account_id not in SYSTEM_ACCOUNTS
        ):
            raise InvalidInput(f"invalid account id {account_id!r}", f"payouts.{account_id}")
    return Op(OpKind.CAPTURE, key, memo, hold_id=hold_id, payouts=tuple(sorted(payouts.items())), fresh=fresh)


def release_op(hold_id: str, key: str, memo: str | None = None, fresh: bool = False) -> Op:
    return Op(OpKind.RELEASE, key, memo, hold_id=hold_id, fresh=fresh)


class Ledger:
    def __init__(self, db: Database, peer_credit: int = 0):
        self.engine = db.writer  # every operation checks balances: it takes the write lock up front
        self.reads = db.engine  # reads need no write lock (SQLite: WAL readers run beside the writer)
        self.postgres = db.postgres
        self.peer_credit = peer_credit  # how far below zero a peer node's account may go

    # --- accounts ---------------------------------------------------------------------------

    def open_account(self, account_id: str, kind: AccountKind | str = AccountKind.USER) -> None:
        """Create the account and its escrow (where a query's hold waits) if missing; idempotent."""
        if kind not in OPENABLE:
            raise InvalidInput(f"an account kind is one of {', '.join(OPENABLE)}", "kind")
        if not (PEER_ACCOUNT if kind == AccountKind.PEER else ACCOUNT_ID).match(account_id):
            raise InvalidInput(f"invalid account id {account_id!r}", "account")
        wanted = [(account_id, kind)]
        if kind != AccountKind.TREASURY:  # any account that may hold a key may pay: it holds funds
            wanted.append((escrow_of(account_id), AccountKind.ESCROW))
        for acc, k in wanted:
            try:
                with self.engine.begin() as conn:
                    if conn.execute(select(ACCOUNTS.c.id).where(ACCOUNTS.c.id == acc)).first() is None:
                        conn.execute(ACCOUNTS.insert(), [{"id": acc, "kind": k, "balance": 0}])
            except IntegrityError:
                pass  # opened concurrently by someone else: the same outcome

    def account(self, account_id: str) -> dict:
        with self.reads.connect() as conn:
            row = conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id)).first()
        if row is None:
            raise UnknownAccount(f"no account {account_id!r}", "account")
        return {
            "account": row.id,
            "kind": row.kind,
            "balance": str(row.balance),
            "balance_ftns": format_ftns(row.balance),
            "created_at": iso_utc(row.created_at),
        }

    def balance(self, account_id: str) -> int:
        with self.reads.connect() as conn:
            balance = conn.execute(select(ACCOUNTS.c.balance).where(ACCOUNTS.c.id == account_id)).first()
        if balance is None:
            raise UnknownAccount(f"no account {account_id!r}", "account")
        return balance[0]

    def entries(self, account_id: str, limit: int = 50, before: int | None = None) -> list[dict]:
        """Newest first; page with `before` = the smallest entry id of the previous page."""
        self.balance(account_id)  # UnknownAccount
        query = (
            select(ENTRIES, TRANSACTIONS.c.kind, TRANSACTIONS.c.memo)
            .join(TRANSACTIONS, ENTRIES.c.transaction_id == TRANSACTIONS.c.id)
            .where(ENTRIES.c.account_id == account_id)
            .order_by(ENTRIES.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(ENTRIES.c.id < before)
        with self.reads.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "transaction_id": r.transaction_id,
                "kind": r.kind,
                "amount": str(r.amount),
                "balance_after": str(r.balance_after),
                "memo": r.memo,
                "created_at": iso_utc(r.created_at),
            }
            for r in rows
        ]

    def total(self, include_system: bool = False) -> int:
        """Sum of balances (all accounts but issuance, unless asked): equals minted - burned."""
        with self.reads.connect() as conn:
            rows = conn.execute(select(ACCOUNTS.c.id, ACCOUNTS.c.balance)).all()
        return sum(b for a, b in rows if include_system or a != ISSUANCE)

    # --- operations -------------------------------------------------------------------------

    def mint(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        return self.post(mint_op(account_id, amount, key, memo))

    def burn(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        return self.post(burn_op(account_id, amount, key, memo))

    def transfer(self, src: str, dst: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        return self.post(transfer_op(src, dst, amount, key, memo))

    def credit(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        return self.post(credit_op(account_id, amount, key, memo))

    def hold(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        return self.post(hold_op(account_id, amount, key, memo))

    def capture(self, hold_id: str, payouts: dict[str, int], key: str, memo: str | None = None) -> Receipt:
        return self.post(capture_op(hold_id, payouts, key, memo))

    def release(self, hold_id: str, key: str, memo: str | None = None) -> Receipt:
        return self.post(release_op(hold_id, key, memo))

    def post(self, op: Op) -> Receipt:
        result = self.post_many([op])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def post_many(self, ops: list[Op], conn: Connection | None = None) -> list[Receipt | PRSMError]:
        """Post operations in one transaction (or inside `conn`'s): each gets its receipt or
        its own refusal, and a refused operation writes nothing."""
        if conn is not None:
            return _post(conn, ops, self.postgres, self.peer_credit)
        try:
            with self.engine.begin() as own:
                return _post(own, ops, self.postgres, self.peer_credit)
        except IntegrityError:
            if len(ops) == 1:
                # A concurrent first attempt with this key committed first: replay it.
                with self.engine.begin() as own:
                    return _post(own, ops, self.postgres, self.peer_credit)
            return [self.post_many([op])[0] for op in ops]


def _post(conn: Connection, ops: list[Op], postgres: bool, peer_credit: int = 0) -> list[Receipt | PRSMError]:
    """The batch poster (see the module docstring). Rows are written only at the end, and
    only for the operations that were applied."""
    # The statements are built once (module level); each batch only binds its lists.
    keys = sorted({op.key for op in ops if not op.fresh})
    done = {r.idempotency_key: r for r in conn.execute(REPLAYS, {"keys": keys})} if keys else {}
    hold_ids = sorted({op.hold_id for op in ops if op.kind in CLOSING})
    holds: dict[str, dict] = {}
    if hold_ids:
        rows = conn.execute(HOLDS_FOR_UPDATE if postgres else HOLDS_READ, {"ids": hold_ids})
        holds = {r.id: r._asdict() for r in rows}
    touched = {a for op in ops for a, _ in op.moves} | {a for op in ops for a, _ in op.payouts}
    for h in holds.values():
        touched |= {h["account_id"], escrow_of(h["account_id"])}
    rows = conn.execute(ACCOUNTS_FOR_UPDATE if postgres else ACCOUNTS_READ, {"ids": sorted(touched)})
    accounts = {r.id: [r.kind, r.balance] for r in rows}
    existing = set(accounts)

    results: list[Receipt | PRSMError] = []
    txns, entries, new_holds, closed_holds = [], [], {}, {}
    posted: dict[str, tuple[str, Receipt]] = {}  # key -> (digest, receipt), this batch
    for op in ops:
        try:
            results.append(
                _apply(op, done, posted, holds, accounts, txns, entries, new_holds, closed_holds, peer_credit)
            )
        except PRSMError as exc:
            results.append(exc)
    if not txns:
        return results
    opened = [{"id": a, "kind": accounts[a][0], "balance": 0} for a in sorted(set(accounts) - existing)]
    if opened:
        conn.execute(ACCOUNTS.insert(), opened)
    conn.execute(TRANSACTIONS.insert(), txns)  # the unique keys are checked here
    if new_holds:
        conn.execute(HOLDS.insert(), list(new_holds.values()))
    if closed_holds:
        conn.execute(CLOSE_HOLD, list(closed_holds.values()))
    changed = {e["account_id"] for e in entries}
    conn.execute(SET_BALANCE, [{"b_id": a, "b_balance": accounts[a][1]} for a in sorted(changed)])
    conn.execute(ENTRIES.insert(), entries)
    return results


def _apply(
    op: Op, done, posted, holds, accounts, txns, entries, new_holds, closed_holds, peer_credit: int = 0
) -> Receipt:
    """Apply one operation to the in-memory state of the batch, or raise and change nothing."""
    earlier = posted.get(op.key)
    if earlier is None and op.key in done:
        row = done[op.key]
        earlier = (row.request_hash, Receipt(row.id, row.kind, op.key, row.hold_id, replayed=True))
    if earlier is not None:
        if earlier[0] != op.digest:
            raise IdempotencyConflict(
                f"idempotency key {op.key!r} was used for a different request", "idempotency_key"
            )
        first = earlier[1]
        return Receipt(first.transaction_id, first.kind, op.key, first.hold_id, replayed=True)

    moves = list(op.moves)
    opens: dict[str, str] = {}
    if op.kind in CLOSING:
        hold = holds.get(op.hold_id)
        if hold is None:
            raise UnknownAccount(f"no hold {op.hold_id!r}", "hold_id")
        if hold["status"] != HoldStatus.OPEN:
            raise HoldClosed(f"hold {op.hold_id} is already {hold['status']}", "hold_id")
        charged = sum(v for _, v in op.payouts)
        if charged > hold["amount"]:
            raise InsufficientFunds(
                f"payouts of {format_ftns(charged)} exceed the hold of {format_ftns(hold['amount'])}",
                "payouts",
                needed=charged,
                available=hold["amount"],
            )
        moves = [(escrow_of(hold["account_id"]), -hold["amount"]), *op.payouts]
        if hold["amount"] > charged:
            moves.append((hold["account_id"], hold["amount"] - charged))
        opens = {a: AccountKind.OWNER for a, _ in op.payouts if a not in accounts}
    assert sum(v for _, v in moves) == 0, "a transaction's entries must sum to zero"

    balances: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for account_id, _ in moves:  # every account must exist before any balance is looked at
        if account_id in accounts:
            kinds[account_id], balances[account_id] = accounts[account_id]
        elif account_id in SYSTEM_ACCOUNTS or account_id in opens:
            kinds[account_id] = SYSTEM_ACCOUNTS.get(account_id) or opens[account_id]
            balances[account_id] = 0
        else:
            raise UnknownAccount(f"no account {account_id!r}", "account")
    for account_id, amount in moves:
        new_balance = balances[account_id] + amount
        floor = -peer_credit if kinds[account_id] == AccountKind.PEER else 0
        if new_balance < floor and kinds[account_id] != AccountKind.ISSUANCE and amount < 0:
            raise InsufficientFunds(
                f"account {account_id!r} holds {format_ftns(balances[account_id])}, needs {format_ftns(-amount)}",
                "amount",
                needed=-amount,
                available=balances[account_id],
            )
        balances[account_id] = new_balance

    # Applied: from here on nothing can fail.
    txn_id = str(uuid.uuid4())
    txns.append({"id": txn_id, "idempotency_key": op.key, "request_hash": op.digest, "kind": op.kind,
                 "hold_id": op.hold_id, "memo": op.memo})  # fmt: skip
    running = {a: accounts[a][1] if a in accounts else 0 for a in balances}
    for account_id, amount in moves:
        running[account_id] += amount
        entries.append({"transaction_id": txn_id, "account_id": account_id, "amount": amount,
                        "balance_after": running[account_id]})  # fmt: skip
    for account_id, balance in balances.items():
        accounts[account_id] = [kinds[account_id], balance]
    if op.kind == OpKind.HOLD:
        (account_id, amount), _ = op.moves
        new_holds[op.hold_id] = {
            "id": op.hold_id,
            "account_id": account_id,
            "amount": -amount,
            "status": HoldStatus.OPEN,
            "closed_at": None,
        }
        holds[op.hold_id] = dict(new_holds[op.hold_id])
    elif op.kind in CLOSING:
        status = HoldStatus.CAPTURED if op.kind == OpKind.CAPTURE else HoldStatus.RELEASED
        holds[op.hold_id]["status"] = status
        if op.hold_id in new_holds:  # opened and closed in the same batch
            new_holds[op.hold_id].update(status=status, closed_at=utcnow())
        else:
            closed_holds[op.hold_id] = {"b_id": op.hold_id, "b_status": status, "b_closed_at": utcnow()}
    receipt = Receipt(txn_id, op.kind, op.key, op.hold_id)
    posted[op.key] = (op.digest, receipt)
    return receipt


ACCOUNTS, TRANSACTIONS = LedgerAccount.__table__, LedgerTransaction.__table__
ENTRIES, HOLDS = LedgerEntry.__table__, LedgerHold.__table__
SET_BALANCE = (
    ACCOUNTS.update().where(ACCOUNTS.c.id == bindparam("b_id")).values(balance=bindparam("b_balance"))
)
_ids = bindparam("ids", expanding=True)
REPLAYS = select(
    TRANSACTIONS.c.idempotency_key, TRANSACTIONS.c.id, TRANSACTIONS.c.kind, TRANSACTIONS.c.hold_id,
    TRANSACTIONS.c.request_hash,
).where(TRANSACTIONS.c.idempotency_key.in_(bindparam("keys", expanding=True)))  # fmt: skip
HOLDS_READ = (
    select(HOLDS.c.id, HOLDS.c.account_id, HOLDS.c.amount, HOLDS.c.status)
    .where(HOLDS.c.id.in_(_ids))
    .order_by(HOLDS.c.id)
)
HOLDS_FOR_UPDATE = HOLDS_READ.with_for_update()
ACCOUNTS_READ = (
    select(ACCOUNTS.c.id, ACCOUNTS.c.kind, ACCOUNTS.c.balance)
    .where(ACCOUNTS.c.id.in_(_ids))
    .order_by(ACCOUNTS.c.id)
)
ACCOUNTS_FOR_UPDATE = ACCOUNTS_READ.with_for_update()
CLOSE_HOLD = (
    HOLDS.update()
    .where(HOLDS.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), closed_at=bindparam("b_closed_at"))
)


def sum_of_entries_per_transaction(ledger: Ledger) -> dict[str, int]:
    """For audits and tests: every transaction's entries must sum to zero."""
    with ledger.reads.connect() as conn:
        rows = conn.execute(select(ENTRIES.c.transaction_id, ENTRIES.c.amount)).all()
    sums: dict[str, int] = {}
    for txn, amount in rows:
        sums[txn] = sums.get(txn, 0) + amount
    return sums
