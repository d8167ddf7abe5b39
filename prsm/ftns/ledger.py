"""The FTNS ledger: double-entry accounts in the database, exact integer amounts, idempotent
operations, no negative balance ever (also under concurrency, on SQLite and PostgreSQL).

Every operation is one transaction row plus entries that sum to zero. Minting and burning move
funds against the `ftns:issuance` account, the only one allowed below zero; so the sum of all
other balances changes only by mint and burn entries. A hold moves funds from a user to the
user's escrow account; capture pays out of escrow and returns the rest; release returns it all.

Concurrency. The balance check and the balance write must not interleave with another writer:
- SQLite: the ledger's engine begins every transaction with BEGIN IMMEDIATE, which takes the
  database's single write lock up front. A conditional UPDATE cannot be used instead: SQLite has
  no exact integer above 2^63 (9.2 FTNS), so amounts are stored as text and checked in Python.
- PostgreSQL: the accounts a transaction touches are locked with SELECT ... FOR UPDATE, in id
  order so two transfers in opposite directions cannot deadlock.

Idempotency. Each operation carries a key; the key is unique in `ftns_transactions`. A retry with
the same key and the same request returns the first result and writes nothing; the same key with
a different request is refused. Two concurrent first attempts: one commits, the other hits the
unique constraint, rolls back everything it did, and returns the winner's result.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from prsm.db.engine import make_engine
from prsm.db.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransaction, iso_utc, utcnow
from prsm.errors import InvalidInput, PRSMError
from prsm.ftns.amounts import check_amount, format_ftns

ISSUANCE = "ftns:issuance"  # system accounts have a prefix no user account id can have
TREASURY = "ftns:treasury"
ACCOUNT_KINDS = ("user", "owner", "operator", "treasury")
BATCHABLE = ("open_account", "mint", "burn", "transfer", "credit", "hold", "capture", "release")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class UnknownAccount(PRSMError):
    status_code = 404


class InsufficientFunds(PRSMError):
    status_code = 402

    def __init__(self, message: str, field: str | None = None, needed: int = 0, available: int = 0):
        super().__init__(message, field)
        self.args = (message, field, needed, available)
        self.needed, self.available = needed, available

    def to_dict(self) -> dict:
        return super().to_dict() | {"needed": str(self.needed), "available": str(self.available)}


class IdempotencyConflict(PRSMError):
    status_code = 409


class HoldClosed(PRSMError):
    status_code = 409


@dataclass(frozen=True)
class Receipt:
    """What an operation did: its transaction, and the hold it opened or closed, if any."""

    transaction_id: str
    kind: str
    idempotency_key: str
    hold_id: str | None = None
    replayed: bool = False


def escrow_of(account_id: str) -> str:
    return f"escrow:{account_id}"


class Ledger:
    def __init__(self, url_or_engine: str | Engine):
        engine = (
            make_engine(url_or_engine, write_lock_on_begin=True)
            if isinstance(url_or_engine, str)
            else url_or_engine
        )
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._postgres = engine.dialect.name == "postgresql"
        # Reads need no write lock: on SQLite they get their own engine (WAL readers run beside
        # the writer); on PostgreSQL the one engine serves both.
        plain = (
            make_engine(engine.url.render_as_string(hide_password=False)) if not self._postgres else engine
        )
        self._reads = sessionmaker(plain, expire_on_commit=False)
        self._local = threading.local()  # the session of the batch this thread is running, if any

    # --- batches ----------------------------------------------------------------------------

    def apply_many(self, calls: list[tuple[str, tuple]]) -> list[Receipt | Exception]:
        """Run several operations in one database transaction, so concurrent queries share one
        commit (and on SQLite one write lock) instead of queueing for it one by one.

        Each call is (method name, arguments) of an operation below and runs in its own
        SAVEPOINT: a refused one rolls back alone and its exception is its result.
        """
        results: list[Receipt | Exception] = []
        with self._sessions.begin() as s:
            self._local.session = s
            try:
                for name, args in calls:
                    if name not in BATCHABLE:
                        results.append(InvalidInput(f"{name!r} cannot run in a batch", "operation"))
                        continue
                    try:
                        with s.begin_nested():
                            results.append(getattr(self, name)(*args))
                    except Exception as exc:  # this call's own result; the batch goes on
                        results.append(exc)
            finally:
                self._local.session = None
        return results

    @contextmanager
    def _write(self):
        batch = getattr(self._local, "session", None)
        if batch is not None:
            yield batch  # apply_many opened a savepoint for this operation
        else:
            with self._sessions.begin() as s:
                yield s

    @contextmanager
    def _read(self):
        batch = getattr(self._local, "session", None)
        if batch is not None:
            yield batch  # sees what earlier calls of the batch wrote
        else:
            with self._reads() as s:
                yield s

    # --- accounts ---------------------------------------------------------------------------

    def open_account(self, account_id: str, kind: str = "user") -> None:
        """Create the account (and, for users, their escrow) if missing; idempotent."""
        if kind not in ACCOUNT_KINDS:
            raise InvalidInput(f"unknown account kind {kind!r}", "kind")
        if not ACCOUNT_ID.match(account_id):
            raise InvalidInput(f"invalid account id {account_id!r}", "account")
        wanted = [(account_id, kind)]
        if kind == "user":
            wanted.append((escrow_of(account_id), "escrow"))
        for acc, k in wanted:
            try:
                with self._write() as s:
                    if s.get(LedgerAccount, acc) is None:
                        s.add(LedgerAccount(id=acc, kind=k, balance=0))
                        s.flush()
            except IntegrityError:
                if getattr(self._local, "session", None) is not None:
                    raise
                # opened concurrently by someone else: the same outcome

    def account(self, account_id: str) -> dict:
        with self._reads() as s:
            account = s.get(LedgerAccount, account_id)
            if account is None:
                raise UnknownAccount(f"no account {account_id!r}", "account")
            return {
                "account": account.id,
                "kind": account.kind,
                "balance": str(account.balance),
                "balance_ftns": format_ftns(account.balance),
                "created_at": iso_utc(account.created_at),
            }

    def balance(self, account_id: str) -> int:
        with self._reads() as s:
            account = s.get(LedgerAccount, account_id)
            if account is None:
                raise UnknownAccount(f"no account {account_id!r}", "account")
            return account.balance

    def entries(self, account_id: str, limit: int = 50, before: int | None = None) -> list[dict]:
        """Newest first; page with `before` = the smallest entry id of the previous page."""
        self.balance(account_id)  # UnknownAccount
        with self._reads() as s:
            query = (
                select(LedgerEntry, LedgerTransaction)
                .join(LedgerTransaction, LedgerEntry.transaction_id == LedgerTransaction.id)
                .where(LedgerEntry.account_id == account_id)
                .order_by(LedgerEntry.id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(LedgerEntry.id < before)
            return [
                {
                    "id": e.id,
                    "transaction_id": t.id,
                    "kind": t.kind,
                    "amount": str(e.amount),
                    "balance_after": str(e.balance_after),
                    "memo": t.memo,
                    "created_at": iso_utc(e.created_at),
                }
                for e, t in s.execute(query).all()
            ]

    def total(self, include_system: bool = False) -> int:
        """Sum of balances (all accounts but issuance, unless asked): equals minted - burned."""
        with self._reads() as s:
            rows = s.execute(select(LedgerAccount.id, LedgerAccount.balance)).all()
        return sum(b for a, b in rows if include_system or a != ISSUANCE)

    # --- operations -------------------------------------------------------------------------

    def mint(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        amount = check_amount(amount)
        return self._apply(key, "mint", [(ISSUANCE, -amount), (account_id, amount)], memo)

    def burn(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        amount = check_amount(amount)
        return self._apply(key, "burn", [(account_id, -amount), (ISSUANCE, amount)], memo)

    def transfer(self, src: str, dst: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        amount = check_amount(amount)
        if src == dst:
            raise InvalidInput("source and destination are the same account", "to")
        return self._apply(key, "transfer", [(src, -amount), (dst, amount)], memo)

    def credit(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        """A reward paid from the treasury."""
        amount = check_amount(amount)
        return self._apply(key, "credit", [(TREASURY, -amount), (account_id, amount)], memo)

    def hold(self, account_id: str, amount: int, key: str, memo: str | None = None) -> Receipt:
        amount = check_amount(amount)
        hold_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"prsm-hold:{key}"))

        def open_hold(conn) -> None:
            conn.execute(
                HOLDS.insert(),
                [{"id": hold_id, "account_id": account_id, "amount": amount, "status": "open"}],
            )

        moves = [(account_id, -amount), (escrow_of(account_id), amount)]
        return self._apply(key, "hold", moves, memo, hold_id=hold_id, extra=open_hold)

    def capture(self, hold_id: str, payouts: dict[str, int], key: str, memo: str | None = None) -> Receipt:
        """Charge a hold: pay `payouts` out of it and return what is left to the holder."""
        for account_id, amount in payouts.items():
            check_amount(amount, f"payouts.{account_id}")
        return self._close(hold_id, key, "capture", payouts, memo)

    def release(self, hold_id: str, key: str, memo: str | None = None) -> Receipt:
        return self._close(hold_id, key, "release", {}, memo)

    def _close(self, hold_id: str, key: str, kind: str, payouts: dict[str, int], memo: str | None) -> Receipt:
        with self._read() as s:
            hold = s.get(LedgerHold, hold_id)
        if hold is None:
            raise UnknownAccount(f"no hold {hold_id!r}", "hold_id")
        charged = sum(payouts.values())
        if charged > hold.amount:
            raise InsufficientFunds(
                f"payouts of {format_ftns(charged)} exceed the hold of {format_ftns(hold.amount)}",
                "payouts",
                charged,
                hold.amount,
            )
        moves = [(escrow_of(hold.account_id), -hold.amount), *payouts.items()]
        if hold.amount > charged:
            moves.append((hold.account_id, hold.amount - charged))

        def close_hold(conn) -> None:
            query = select(HOLDS.c.status).where(HOLDS.c.id == hold_id)
            status = conn.execute(query.with_for_update() if self._postgres else query).scalar_one()
            if status != "open":
                raise HoldClosed(f"hold {hold_id} is already {status}", "hold_id")
            closed = "captured" if kind == "capture" else "released"
            conn.execute(
                HOLDS.update().where(HOLDS.c.id == hold_id).values(status=closed, closed_at=utcnow())
            )

        request = {"hold_id": hold_id, "payouts": {a: str(v) for a, v in sorted(payouts.items())}}
        return self._apply(key, kind, moves, memo, hold_id=hold_id, extra=close_hold, request=request)

    def _apply(
        self, key: str, kind: str, moves: list[tuple[str, int]], memo: str | None, hold_id: str | None = None,
        extra=None, request: dict | None = None,
    ) -> Receipt:  # fmt: skip
        if not key or len(key) > 200:
            raise InvalidInput("an idempotency key of 1 to 200 characters is required", "idempotency_key")
        request = request or {"moves": [(a, str(v)) for a, v in moves]}
        digest = hashlib.sha256(json.dumps([kind, request, memo], sort_keys=True).encode()).hexdigest()
        txn_id = str(uuid.uuid4())
        try:
            with self._write() as s:
                # The replay check runs in the writing transaction: one round trip, not two.
                replay = self._replay(key, digest, s)
                if replay:
                    return replay
                self._post(s, txn_id, key, digest, kind, moves, memo, hold_id, extra)
        except IntegrityError:
            if getattr(self._local, "session", None) is not None:
                raise  # inside a batch: this call fails alone; a retry replays
            replay = self._replay(key, digest)  # a concurrent attempt with this key won
            if replay:
                return replay
            raise
        return Receipt(txn_id, kind, key, hold_id)

    def _replay(self, key: str, digest: str, s: Session | None = None) -> Receipt | None:
        query = select(
            TRANSACTIONS.c.id, TRANSACTIONS.c.kind, TRANSACTIONS.c.hold_id, TRANSACTIONS.c.request_hash
        )
        query = query.where(TRANSACTIONS.c.idempotency_key == key)
        if s is not None:
            done = s.connection().execute(query).first()
        else:
            with self._read() as reader:
                done = reader.connection().execute(query).first()
        if done is None:
            return None
        if done.request_hash != digest:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was used for a different request", "idempotency_key"
            )
        return Receipt(done.id, done.kind, key, done.hold_id, replayed=True)

    def _post(self, s: Session, txn_id, key, digest, kind, moves, memo, hold_id, extra) -> None:
        # Core statements, not ORM objects: a hold + capture pair costs a fraction of the CPU,
        # and the query path makes one pair per query.
        conn = s.connection()
        ids = sorted({a for a, _ in moves})
        query = select(ACCOUNTS.c.id, ACCOUNTS.c.kind, ACCOUNTS.c.balance).where(ACCOUNTS.c.id.in_(ids))
        if self._postgres:
            query = query.order_by(ACCOUNTS.c.id).with_for_update()
        accounts = {r.id: (r.kind, r.balance) for r in conn.execute(query)}
        for account_id in ids:
            if account_id not in accounts:
                if account_id not in (ISSUANCE, TREASURY):
                    raise UnknownAccount(f"no account {account_id!r}", "account")
                system_kind = account_id.removeprefix("ftns:")
                conn.execute(ACCOUNTS.insert(), [{"id": account_id, "kind": system_kind, "balance": 0}])
                accounts[account_id] = (system_kind, 0)
        assert sum(v for _, v in moves) == 0, "a transaction's entries must sum to zero"
        conn.execute(
            TRANSACTIONS.insert(),
            [{"id": txn_id, "idempotency_key": key, "request_hash": digest, "kind": kind,
              "hold_id": hold_id, "memo": memo}],
        )  # fmt: skip  # the unique key is checked here, before any balance moves
        if extra:
            extra(conn)
        balances = {a: b for a, (_, b) in accounts.items()}
        entries = []
        for account_id, amount in moves:
            new_balance = balances[account_id] + amount
            if new_balance < 0 and accounts[account_id][0] != "issuance":
                raise InsufficientFunds(
                    f"account {account_id!r} holds {format_ftns(balances[account_id])}, "
                    f"needs {format_ftns(-amount)}",
                    "amount",
                    needed=-amount,
                    available=balances[account_id],
                )
            balances[account_id] = new_balance
            entries.append({"transaction_id": txn_id, "account_id": account_id, "amount": amount,
                            "balance_after": new_balance})  # fmt: skip
        conn.execute(SET_BALANCE, [{"b_id": a, "b_balance": balances[a]} for a in ids])
        conn.execute(ENTRIES.insert(), entries)


ACCOUNTS, TRANSACTIONS = LedgerAccount.__table__, LedgerTransaction.__table__
ENTRIES, HOLDS = LedgerEntry.__table__, LedgerHold.__table__
SET_BALANCE = (
    ACCOUNTS.update().where(ACCOUNTS.c.id == bindparam("b_id")).values(balance=bindparam("b_balance"))
)


def sum_of_entries_per_transaction(ledger: Ledger) -> dict[str, int]:
    """For audits and tests: every transaction's entries must sum to zero."""
    with ledger._reads() as s:
        rows = s.execute(select(LedgerEntry.transaction_id, LedgerEntry.amount)).all()
    sums: dict[str, int] = {}
    for txn, amount in rows:
        sums[txn] = sums.get(txn, 0) + amount
    return sums
