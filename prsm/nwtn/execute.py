"""Execution: run a TaskPlan's ready sub-tasks in parallel, each on its best-ranked model,
falling through to the next candidate when one fails. Free of Ray: the deployment passes in
how to rank and how to call a model, so this logic is tested without a cluster."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from prsm import logs, metrics
from prsm.errors import BadInstruction, Overloaded, PRSMError
from prsm.types import (
    PEER_MODEL_PREFIX,
    PLACEHOLDER,
    Candidate,
    Capability,
    ModelCall,
    ModelKind,
    ModelOutput,
    SubTask,
    TaskPlan,
    TaskStatus,
)

GENERAL_SYSTEM_PROMPT = "You are a careful scientific assistant. Answer briefly and precisely."
MAX_ATTEMPTS = 3


@dataclass
class Attempt:
    model_id: str
    ok: bool
    latency_ms: float
    error: str | None = None
    # The model refused the input (BadInstruction): the caller's mistake, no mark against the
    # model's health and no trip of its breaker.
    refused: bool = False
    # Never called: the query's deadline passed before this candidate's turn. Neither the
    # model's failure nor the caller's mistake: it counts for nothing.
    skipped: bool = False
    # Answered from the sub-task cache (prsm/nwtn/cache.py): the model did not run.
    cached: bool = False
    # Refused unrun: the model's queue was full (Overloaded). Load, not the model's failure.
    busy: bool = False


@dataclass
class TaskOutcome:
    task: SubTask
    instruction: str  # with earlier results filled in
    status: TaskStatus = TaskStatus.PENDING
    model_id: str | None = None
    kind: ModelKind | None = None  # of the model that answered
    result: str | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    charged: int | None = None  # what a peer node charged this node for the answer
    cached: bool = False  # the answer came from the sub-task cache
    latency_ms: float = 0.0
    route_ms: float = 0.0
    ranking: list[dict] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)


def circuit(model_id: str) -> str:
    """What a breaker guards: a model, or for a peer node's model (`peer-<node>-<model>`) the
    whole peer node, whose models fail together when it is down."""
    if model_id.startswith(PEER_MODEL_PREFIX):
        node = model_id[len(PEER_MODEL_PREFIX) :].split("-", 1)[0]
        return f"{PEER_MODEL_PREFIX}{node}"
    return model_id


def blocked(model_id: str, open_circuits: frozenset[str]) -> bool:
    return model_id in open_circuits or circuit(model_id) in open_circuits


class CircuitBreaker:
    """Per model (per node for peer nodes' models: `circuit`): after `threshold` failures in a row
    it gets no traffic for `cooldown_s`, then one trial call decides whether it is healthy again.
    So a peer that stops answering drops out, and comes back when it answers again."""

    def __init__(self, threshold: int = 3, cooldown_s: float = 30.0):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}

    def record(self, model_id: str, ok: bool) -> None:
        model_id = circuit(model_id)
        if ok:
            self._failures.pop(model_id, None)
            if self._opened_at.pop(model_id, None) is not None:
                self.report()
            return
        self._failures[model_id] = self._failures.get(model_id, 0) + 1
        if self._failures[model_id] >= self.threshold:
            self._opened_at[model_id] = time.monotonic()
            self.report()

    def report(self) -> None:
        """The open breakers into the metrics (on each change, and on NWTN's health check, which
        sees a cooldown end)."""
        metrics.OPEN_CIRCUITS.set(len(self.open_ids()))

    def open_ids(self) -> frozenset[str]:
        now = time.monotonic()
        return frozenset(m for m, t in self._opened_at.items() if now - t < self.cooldown_s)


RankFn = Callable[[SubTask, frozenset[str]], Awaitable[list[Candidate]]]
# The sub-task cache's answer for this candidate and call, if it has one (prsm/nwtn/cache.py).
CacheFn = Callable[[Candidate, ModelCall], Awaitable[ModelOutput | None]]
CallFn = Callable[[str, ModelKind, ModelCall], Awaitable[ModelOutput]]  # (model id, kind, call)
DoneFn = Callable[[TaskOutcome], Awaitable[None]]


# "x = 6", or a formula's "K = 9 joule (kinetic energy: ...)": the value, with its unit.
_ONE_SOLUTION = re.compile(r"^\s*[A-Za-z]\w*\s*=\s*(?P<value>[^,=;()]+?)\s*(?:\(.*\))?\s*$", re.DOTALL)


def value_of(result: str) -> str:
    """An earlier result as a value for an exact tool: "x = 6" is 6; "26.1 mile" stays a
    quantity with its unit; several solutions ("x = -2, x = 2") stay as they are, so the tool
    refuses them rather than picking one."""
    one = _ONE_SOLUTION.match(result)
    return one["value"] if one else result.strip()


def fill(instruction: str, results: dict[str, str], as_values: bool = False) -> str:
    """Earlier results into their `{t1}` slots: as values for a tool, as text for a model."""
    if as_values:
        return PLACEHOLDER.sub(lambda m: value_of(results[m[1]]) if m[1] in results else m[0], instruction)
    return PLACEHOLDER.sub(lambda m: results.get(m[1], m[0]), instruction)


def messages_for(task: SubTask, instruction: str) -> tuple[dict, ...]:
    if task.capability == Capability.GENERAL:
        return (
            {"role": "system", "content": GENERAL_SYSTEM_PROMPT},
            {"role": "user", "content": instruction},
        )
    return ({"role": "user", "content": instruction},)


T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, or TimeoutError once `seconds` have passed: then it is cancelled and
    left to end by itself. Unlike `asyncio.wait_for`, the caller never waits for the cancellation
    to finish: a replica stuck in a long forward pass cannot hold a deadline past its time."""
    task = asyncio.ensure_future(awaitable)
    if seconds is None:
        return await task
    try:
        done, _ = await asyncio.wait({task}, timeout=max(seconds, 0))
    except asyncio.CancelledError:
        if task.done() and not task.cancelled():  # it ended first: its outcome, as wait_for does
            return task.result()
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_quietly)
        raise TimeoutError
    return task.result()


def _quietly(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a late failure of an abandoned call is not logged as lost


async def run_task(
    task: SubTask,
    outcomes: dict[str, TaskOutcome],
    rank: RankFn,
    call: CallFn,
    breaker: CircuitBreaker,
    max_new_tokens: int,
    deadline: float | None = None,
    cache: CacheFn | None = None,
) -> TaskOutcome:
    """Run one sub-task: its candidates in rank order until one answers (from the cache when it
    has the candidate's answer), each call bounded by what is left of the query's `deadline`
    (time.monotonic())."""
    results = {k: o.result for k, o in outcomes.items() if o.status == TaskStatus.DONE and o.result}
    as_values = task.capability != Capability.GENERAL
    outcome = TaskOutcome(task=task, instruction=fill(task.instruction, results, as_values))
    failed_deps = [d for d in task.depends_on if outcomes[d].status != TaskStatus.DONE]
    if failed_deps:
        outcome.status = TaskStatus.SKIPPED
        outcome.error = f"depends on {', '.join(failed_deps)}, which failed"
        return outcome

    started = time.perf_counter()
    candidates = await rank(task, breaker.open_ids())
    outcome.route_ms = (time.perf_counter() - started) * 1000
    outcome.ranking = [c.to_dict() for c in candidates]
    if not candidates:
        outcome.status = TaskStatus.FAILED
        outcome.error = f"no registered model offers capability {task.capability!r}"
        return outcome

    call_args = ModelCall(
        messages=messages_for(task, outcome.instruction),
        max_new_tokens=max_new_tokens,
        request_id=logs.REQUEST_ID.get(),
    )
    for candidate in candidates[:MAX_ATTEMPTS]:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            outcome.attempts.append(
                Attempt(candidate.model_id, False, 0.0, "the query's deadline passed first", skipped=True)
            )
            break
        t0 = time.perf_counter()
        hit = None if cache is None else await cache(candidate, call_args)
        if hit is not None:
            latency = (time.perf_counter() - t0) * 1000
            outcome.attempts.append(Attempt(candidate.model_id, True, latency, cached=True))
            outcome.status, outcome.model_id, outcome.result = TaskStatus.DONE, candidate.model_id, hit.text
            outcome.kind, outcome.cached = candidate.kind, True
            outcome.tokens_in, outcome.tokens_out, outcome.latency_ms = hit.tokens_in, hit.tokens_out, latency
            return outcome
        try:
            output = await within(call(candidate.model_id, candidate.kind, call_args), left)
        except Exception as exc:  # any failure of one candidate hands the task to the next
            latency = (time.perf_counter() - t0) * 1000
            if isinstance(exc, TimeoutError):  # the call is cancelled, on its replica too
                exc = PRSMError(f"no answer within the query's deadline ({left:.1f} s were left)")
            message = str(exc) if isinstance(exc, PRSMError) else f"{type(exc).__name__}: {exc}"
            refused = isinstance(exc, BadInstruction)
            busy = isinstance(exc, Overloaded)
            outcome.attempts.append(
                Attempt(candidate.model_id, False, latency, message[:500], refused, busy=busy)
            )
            if not refused and not busy:
                breaker.record(candidate.model_id, ok=False)
            continue
        latency = (time.perf_counter() - t0) * 1000
        outcome.attempts.append(Attempt(candidate.model_id, True, latency))
        breaker.record(candidate.model_id, ok=True)
        outcome.status, outcome.model_id, outcome.result = TaskStatus.DONE, candidate.model_id, output.text
        outcome.kind, outcome.charged = candidate.kind, output.charged
        outcome.tokens_in, outcome.tokens_out, outcome.latency_ms = (
            output.tokens_in,
            output.tokens_out,
            latency,
        )
        return outcome
    outcome.status = TaskStatus.FAILED
    outcome.error = "; ".join(f"{a.model_id}: {a.error}" for a in outcome.attempts)
    return outcome


async def execute(
    plan: TaskPlan,
    rank: RankFn,
    call: CallFn,
    breaker: CircuitBreaker,
    max_new_tokens: int,
    on_done: DoneFn | None = None,
    deadline: float | None = None,
    cache: CacheFn | None = None,
) -> dict[str, TaskOutcome]:
    """Run every sub-task once its dependencies are finished; independent ones run at once. If
    this is cancelled (the client went away), the running sub-tasks are cancelled with it."""
    outcomes: dict[str, TaskOutcome] = {}
    started: set[str] = set()
    running: dict[asyncio.Task, str] = {}
    try:
        while True:
            for task in plan.ready(set(outcomes), started):
                started.add(task.key)
                job = asyncio.create_task(
                    run_task(task, outcomes, rank, call, breaker, max_new_tokens, deadline, cache)
                )
                running[job] = task.key
            if not running:
                return {t.key: outcomes[t.key] for t in plan.tasks}
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                key = running.pop(job)
                outcomes[key] = job.result()
                if on_done is not None:
                    await on_done(outcomes[key])
    finally:
        for job in running:  # cancelled mid-way: nothing keeps running behind us
            job.cancel()
