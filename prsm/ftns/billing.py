"""Charging for work: the one place that holds, captures and releases FTNS for a query or a chat
completion, and owns their idempotency keys.

A query (POST /v1/query, the `nwtn` chat model): its quote is held as `query:<session>:hold` in
the transaction that writes the session, and captured as `query:<session>:capture` (the
measured cost, split between owners, operator and treasury) or released as
`query:<session>:release` in the one that writes its outcome (prsm/nwtn/sessions.py carries the
operations). Keys made from a new session id cannot be retries, so the ledger skips their
replay lookup. A query whose NWTN process died is released later by `release_abandoned` with
the very key its query would have used: it cannot be released twice.

A chat completion of one model: hold, call, capture (or release), each its own transaction,
keyed `completion:<id>:...`; no orchestration fee.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from prsm.db.models import LedgerHold, QuerySession, utcnow
from prsm.errors import HoldClosed, IdempotencyConflict, InsufficientFunds, UnknownAccount
from prsm.ftns.amounts import format_ftns
from prsm.ftns.ledger import Ledger, Op, Receipt, capture_op, hold_op, release_op
from prsm.ftns.pricing import TEMPLATE_TOKENS, Shares, call_cost, estimate_tokens, quote, split
from prsm.settings import Settings
from prsm.types import ModelCall, ModelCard, ModelOutput, SessionStatus, TaskPlan

SESSIONS, HOLDS = QuerySession.__table__, LedgerHold.__table__


def query_key(session_id: str, step: str) -> str:
    return f"query:{session_id}:{step}"


@dataclass(frozen=True)
class QueryCharge:
    """The ledger operations of one query, all keyed by its session id."""

    session_id: str
    hold: Op

    @property
    def hold_id(self) -> str:
        return self.hold.hold_id

    def capture(self, parts: dict[str, int]) -> Op:
        key = query_key(self.session_id, "capture")
        return capture_op(self.hold_id, parts, key, f"query {self.session_id}", fresh=True)

    def release(self) -> Op:
        key = query_key(self.session_id, "release")
        return release_op(self.hold_id, key, f"query {self.session_id} failed", fresh=True)


class Billing:
    def __init__(self, ledger: Ledger, settings: Settings):
        self.ledger = ledger
        self.shares = Shares.from_settings(settings)  # refuses shares that do not add up, at start
        self.fee = settings.query_fee
        self.max_new_tokens = settings.max_new_tokens

    # --- queries ----------------------------------------------------------------------------

    def quote_query(self, plan: TaskPlan, candidates: dict[str, list[ModelCard]]) -> int:
        return quote(plan, candidates, self.max_new_tokens, self.fee)

    def open_query(self, session_id: str, account: str, quoted: int) -> QueryCharge:
        key = query_key(session_id, "hold")
        return QueryCharge(session_id, hold_op(account, quoted, key, f"query {session_id}", fresh=True))

    def query_parts(
        self, costs: list[tuple[ModelCard, int, int | None]], quoted: int, cards: dict[str, ModelCard]
    ) -> dict[str, int]:
        """What a query's charge pays whom: each model's cost plus the fee, at most the quote."""
        return split(costs, self.fee, quoted, self.shares, cards)

    def release_abandoned(self, older_than_s: float) -> list[str]:
        """Sessions still `running` after `older_than_s` (their NWTN process died mid-query): end
        them `failed` and release their holds, in one transaction; then any other hold still open
        after that long (a chat completion's whose process died). Returns the session ids. NWTN
        runs this on a schedule (`PRSM_ABANDONED_AFTER_S`, longer than any query may run)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self.ledger.engine.begin() as conn:
            rows = conn.execute(
                select(SESSIONS.c.id, SESSIONS.c.hold_id)
                .where(SESSIONS.c.status == SessionStatus.RUNNING, SESSIONS.c.created_at < cutoff)
                .order_by(SESSIONS.c.created_at)
            ).all()
            ops = [
                release_op(r.hold_id, query_key(r.id, "release"), f"query {r.id} abandoned")
                for r in rows
                if r.hold_id
            ]
            for result in self.ledger.post_many(ops, conn) if ops else []:
                if isinstance(result, Exception) and not isinstance(result, HoldClosed):
                    raise result
            if rows:
                conn.execute(
                    SESSIONS.update()
                    .where(SESSIONS.c.id.in_([r.id for r in rows]))
                    .values(status=SessionStatus.FAILED, error="abandoned: the orchestrator stopped mid-query",
                            charged=0, finished_at=utcnow())
                )  # fmt: skip
        with self.ledger.engine.begin() as conn:
            stale = (
                conn.execute(
                    select(HOLDS.c.id)
                    .where(HOLDS.c.status == "open", HOLDS.c.created_at < cutoff)
                    .order_by(HOLDS.c.id)
                )
                .scalars()
                .all()
            )
            ops = [release_op(h, f"sweep:{h}:release", "abandoned: released by the sweep") for h in stale]
            for result in self.ledger.post_many(ops, conn) if ops else []:
                if isinstance(result, Exception) and not isinstance(result, HoldClosed):
                    raise result
        return [r.id for r in rows]

    # --- chat completions -------------------------------------------------------------------

    async def completion(
        self,
        account: str,
        card: ModelCard,
        call: ModelCall,
        run: Callable[[], Awaitable[ModelOutput]],
        cards: dict[str, ModelCard],
        key: str | None = None,
    ) -> tuple[ModelOutput, dict]:
        """Run one model call paid by `account`: hold its quote (the longest answer allowed), run,
        capture the measured cost. `cards` must hold the card's teacher (its royalty). `key` names
        the call where the caller gives it an id (a peer node's nonce): the same key a second time
        is refused before anything runs (409)."""
        held = await self._hold(account, card, call, key)
        try:
            output = await run()
        except BaseException:  # a failure, or the client went away (cancelled): the hold returns
            await asyncio.shield(held.release())
            raise
        return output, await held.capture(output, cards)

    async def completion_stream(
        self,
        account: str,
        card: ModelCard,
        call: ModelCall,
        pieces: AsyncIterator[ModelOutput],
        cards: dict[str, ModelCard],
        receipt: dict,
    ) -> AsyncIterator[ModelOutput]:
        """`completion`, streamed: the hold is placed before the first piece, the pieces pass
        through, and the charge (written into `receipt` when the stream ends) is the same as
        unstreamed for the same answer. A stream that ends early (the client went away, a
        failure after some pieces) is charged for what the model did: the prompt and the tokens
        made so far; one that ends before any piece is released."""
        held = await self._hold(account, card, call, None)
        last: ModelOutput | None = None
        try:
            async for piece in pieces:
                last = piece
                yield piece
        finally:  # the end, a failure, or the client went away (closed or cancelled mid-stream)
            # One shielded task does it all: a cancelled stream's task may be cancelled again at
            # every await of its clean-up (an ASGI server's cancel scope does that).
            await asyncio.shield(self._stream_ended(pieces, held, last, cards, receipt))

    @staticmethod
    async def _stream_ended(pieces, held: _Held, last: ModelOutput | None, cards, receipt: dict) -> None:
        try:
            closing = getattr(pieces, "aclose", None)
            if closing is not None:  # an early end stops the model before the charge is counted
                await closing()
        finally:
            if last is None:
                await held.release()
            else:
                receipt.update(await held.capture(last, cards))

    async def _hold(self, account: str, card: ModelCard, call: ModelCall, key: str | None) -> _Held:
        tokens_in = estimate_tokens(json.dumps(list(call.messages))) + TEMPLATE_TOKENS
        quoted = call_cost(card, tokens_in, call.max_new_tokens)
        held = _Held(self, card, quoted, None, key or f"completion:{uuid.uuid4()}")
        if quoted == 0:  # a free model: nothing to hold or capture
            return held
        held.hold = hold_op(account, quoted, f"{held.key}:hold", f"completion {card.id}", fresh=key is None)
        with payment_refusal(account, quoted):
            if (await held.post(held.hold)).replayed:
                raise IdempotencyConflict(
                    f"call {held.key} was made before: each is answered once", "idempotency_key"
                )
        return held


@dataclass
class _Held:
    """A chat completion's hold, captured for what its model did or released (once either)."""

    billing: Billing
    card: ModelCard
    quoted: int
    hold: Op | None
    key: str
    closed: bool = False

    async def post(self, op: Op) -> Receipt:
        return await asyncio.to_thread(self.billing.ledger.post, op)

    async def release(self) -> None:
        if self.hold is not None and not self.closed:
            self.closed = True
            await self.post(release_op(self.hold.hold_id, f"{self.key}:release", fresh=True))

    async def capture(self, output: ModelOutput, cards: dict[str, ModelCard]) -> dict:
        if self.hold is None:
            return {"quoted": "0", "charged": "0", "split": {}}
        cost = call_cost(self.card, output.tokens_in, output.tokens_out)
        parts = split([(self.card, cost, output.charged)], 0, self.quoted, self.billing.shares, cards)
        if not self.closed:
            self.closed = True
            await self.post(capture_op(self.hold.hold_id, parts, f"{self.key}:capture", fresh=True))
        return {"quoted": str(self.quoted), "charged": str(sum(parts.values())),
                "split": {a: str(v) for a, v in sorted(parts.items())}}  # fmt: skip


@contextmanager
def payment_refusal(account: str, quoted: int) -> Iterator[None]:
    """A hold the account cannot cover becomes one 402 that says what is needed."""
    try:
        yield
    except (UnknownAccount, InsufficientFunds) as exc:
        available = getattr(exc, "available", 0)
        raise InsufficientFunds(
            f"this is quoted at {format_ftns(quoted)} and account {account!r} holds {format_ftns(available)}"
            + ("" if available else f" (empty; on a dev stack: prsm ftns faucet {account} 1)"),
            "account",
            needed=quoted,
            available=available,
        ) from exc
