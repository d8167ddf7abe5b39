"""Per-key limits that hold across ingress replicas: requests and tokens per rolling minute,
queries at once, and an FTNS budget per period.

One `Limiter` serves the whole cluster (a named Ray actor, `prsm-limiter`; in-process without a
cluster). Its methods do not await, so each runs alone: a burst of requests on one key, from any
number of replicas, never gets more through than the limit. The ingress asks before a request
runs (`admit`) and reports what it used after (`settle`: tokens, FTNS charged, the slot back).

- requests: a rolling 60 s log of admitted requests, exact.
- tokens: the tokens of finished calls in the last 60 s; a key at or past its limit is refused
  until enough of them age out. Calls in flight are not counted until they finish (as OpenAI
  counts usage), so a burst can pass the token limit by what its in-flight calls use: the
  concurrency limit bounds that.
- concurrency: queries and chat completions running at once.
- budget: FTNS charged in the current period (periods start at a key's first request). Kept in the
  limiter's memory: a restart of the cluster starts the period's count again.

Over a limit: 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers (the budget's code is
`insufficient_quota`, as OpenAI's); out of funds stays 402 (the ledger's).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from prsm.types import KeyLimits

WINDOW_S = 60.0
NAME = "prsm-limiter"


@dataclass
class Verdict:
    ok: bool
    headers: list[tuple[str, str]]
    code: str | None = None  # rate_limit_exceeded | insufficient_quota
    message: str = ""
    retry_after_s: int = 0


@dataclass
class _State:
    requests: deque = field(default_factory=deque)  # times
    tokens: deque = field(default_factory=deque)  # (time, tokens)
    token_sum: int = 0
    in_flight: int = 0
    period_start: float | None = None
    spent: int = 0
    seen: float = 0.0


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class Limiter:
    def __init__(self):
        self._keys: dict[str, _State] = {}
        self._admits = 0

    def _state(self, key_id: str, now: float) -> _State:
        state = self._keys.setdefault(key_id, _State())
        state.seen = now
        while state.requests and state.requests[0] <= now - WINDOW_S:
            state.requests.popleft()
        while state.tokens and state.tokens[0][0] <= now - WINDOW_S:
            state.token_sum -= state.tokens.popleft()[1]
        return state

    def admit(self, key_id: str, limits: KeyLimits, concurrent: bool, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        state = self._state(key_id, now)
        self._admits += 1
        if self._admits % 10_000 == 0:
            self._forget_idle(now)
        if limits.budget is not None and (
            state.period_start is None or now >= state.period_start + limits.budget_period_s
        ):
            state.period_start, state.spent = now, 0

        refusal = None
        if limits.rpm is not None and len(state.requests) >= limits.rpm:
            refusal = ("rate_limit_exceeded", f"over {limits.rpm} requests per minute",
                       state.requests[0] + WINDOW_S - now if state.requests else WINDOW_S)  # fmt: skip
        elif limits.tpm is not None and state.token_sum >= limits.tpm:
            refusal = (
                "rate_limit_exceeded",
                f"over {limits.tpm} tokens per minute",
                self._tokens_free_in(state, limits, now),
            )
        elif concurrent and limits.concurrent is not None and state.in_flight >= limits.concurrent:
            refusal = ("rate_limit_exceeded", f"over {limits.concurrent} queries at once", 1.0)
        elif limits.budget is not None and state.spent >= limits.budget:
            refusal = ("insufficient_quota", f"this key's budget of {limits.budget} base units for the period is spent",
                       state.period_start + limits.budget_period_s - now)  # fmt: skip
        if refusal is None:
            state.requests.append(now)
            if concurrent:
                state.in_flight += 1
        headers = self._headers(state, limits, now)
        if refusal is None:
            return Verdict(True, headers)
        code, message, wait = refusal
        return Verdict(False, headers, code, f"rate limit: {message}", max(1, math.ceil(wait)))

    def settle(
        self, key_id: str, concurrent: bool, tokens: int = 0, spent: int = 0, now: float | None = None
    ) -> None:
        now = time.monotonic() if now is None else now
        state = self._state(key_id, now)
        if concurrent and state.in_flight > 0:
            state.in_flight -= 1
        if tokens > 0:
            state.tokens.append((now, tokens))
            state.token_sum += tokens
        if spent > 0:
            state.spent += spent

    def apply(self, ops: list[tuple]) -> list[Verdict | None]:
        """A batch of one replica's calls, in order: ("admit", key_id, limits, concurrent) answers
        its Verdict, ("settle", key_id, concurrent, tokens, spent) answers None."""
        return [self.admit(*op[1:]) if op[0] == "admit" else self.settle(*op[1:]) for op in ops]

    @staticmethod
    def _tokens_free_in(state: _State, limits: KeyLimits, now: float) -> float:
        over, wait = state.token_sum - (limits.tpm or 0), WINDOW_S
        for at, count in state.tokens:
            over -= count
            wait = at + WINDOW_S - now
            if over < 0:
                break
        return wait

    @staticmethod
    def _headers(state: _State, limits: KeyLimits, now: float) -> list[tuple[str, str]]:
        headers = []
        if limits.rpm is not None:
            reset = state.requests[0] + WINDOW_S - now if state.requests else 0.0
            headers += [("x-ratelimit-limit-requests", str(limits.rpm)),
                        ("x-ratelimit-remaining-requests", str(max(limits.rpm - len(state.requests), 0))),
                        ("x-ratelimit-reset-requests", duration(reset))]  # fmt: skip
        if limits.tpm is not None:
            reset = state.tokens[0][0] + WINDOW_S - now if state.tokens else 0.0
            headers += [("x-ratelimit-limit-tokens", str(limits.tpm)),
                        ("x-ratelimit-remaining-tokens", str(max(limits.tpm - state.token_sum, 0))),
                        ("x-ratelimit-reset-tokens", duration(reset))]  # fmt: skip
        return headers

    def _forget_idle(self, now: float) -> None:
        """Keys with nothing in their windows, nothing running and no budget period open."""
        for key_id in [k for k, s in self._keys.items() if not s.requests and not s.tokens and not s.in_flight
                       and s.period_start is None and now - s.seen > WINDOW_S]:  # fmt: skip
            del self._keys[key_id]


class LocalLimiter:
    """The limiter in this process (no cluster: tests, a single process)."""

    def __init__(self, limiter: Limiter | None = None):
        self.limiter = limiter or Limiter()

    async def admit(self, key_id: str, limits: KeyLimits, concurrent: bool) -> Verdict:
        return self.limiter.admit(key_id, limits, concurrent)

    async def settle(self, key_id: str, concurrent: bool, tokens: int, spent: int) -> None:
        self.limiter.settle(key_id, concurrent, tokens, spent)


class RayLimiter:
    """The cluster's one limiter: a named Ray actor, made by the first replica that asks. A
    replica's concurrent calls to it travel in batches (one actor call carries every admit and
    settle waiting at that moment, in order), so the limiter costs a request a share of a hop."""

    def __init__(self, namespace: str = "prsm"):
        import ray

        from prsm.nwtn.remote import Coalescer

        actor = ray.remote(Limiter).options(
            name=NAME, namespace=namespace, get_if_exists=True, lifetime="detached", num_cpus=0,
            max_restarts=-1,
        )  # fmt: skip
        self._actor = actor.remote()
        self._ops = Coalescer(self._actor.apply.remote)
        self._settling: set[asyncio.Future] = set()

    async def admit(self, key_id: str, limits: KeyLimits, concurrent: bool) -> Verdict:
        return await self._ops.call(("admit", key_id, limits, concurrent))

    async def settle(self, key_id: str, concurrent: bool, tokens: int, spent: int) -> None:
        # Queued, not awaited: it rides in this replica's next batch, ahead of any admit queued
        # after it; the answer to the client does not wait for it.
        sent = asyncio.ensure_future(self._ops.call(("settle", key_id, concurrent, tokens, spent)))
        self._settling.add(sent)
        sent.add_done_callback(self._settling.discard)
