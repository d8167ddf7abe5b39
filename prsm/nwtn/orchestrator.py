"""NWTN: one query from prompt to traced answer.

    screen -> plan -> quote and hold -> execute (rank, call, in parallel) -> compile -> capture

Ray-free: the deployment hands in `rank` and `call` (prsm/nwtn/remote.py: the Router and
model replica deployments behind batching clients); tests hand in in-process versions of the
same real components. Charging is prsm/ftns/billing.py's; persistence is prsm/nwtn/sessions.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from prsm import canary, logs, metrics, quality
from prsm.db.committer import Write
from prsm.errors import (
    RETRY_AFTER_S,
    AllCandidatesFailed,
    InvalidInput,
    ModelCallFailed,
    Overloaded,
    PromptBlocked,
    PRSMError,
    QueryRefused,
    UnknownModel,
)
from prsm.ftns.amounts import FTNS
from prsm.ftns.billing import Billing, payment_refusal
from prsm.ftns.pricing import BPS, call_cost
from prsm.nwtn import cache
from prsm.nwtn.cache import SubtaskCache
from prsm.nwtn.compile import compile_answer
from prsm.nwtn.execute import (
    MAX_ATTEMPTS,
    CallFn,
    CircuitBreaker,
    TaskOutcome,
    blocked,
    execute,
    messages_for,
    within,
)
from prsm.nwtn.grade import Finished, ReferenceGrader, SimilarityFn, ToolGrader
from prsm.nwtn.plan import (
    llm_planner_messages,
    plan_deterministic,
    plan_from_llm_output,
    plan_response_format,
    validate,
)
from prsm.nwtn.sessions import SessionStore
from prsm.nwtn.trace import SessionRecord, Step, task_steps
from prsm.registry import Registry
from prsm.safety import blocking, screen
from prsm.settings import Settings, tradeoff
from prsm.types import (
    PLAN_SCHEMA_NAME,
    Candidate,
    ModelCall,
    ModelCard,
    ModelKind,
    ModelOutput,
    SessionStatus,
    StepRole,
    SubTask,
    TaskPlan,
    TaskStatus,
)

CARDS_REFRESH_S = 1.0
# Shadow grades in flight on one NWTN replica at most: past this a sampled sub-task goes
# ungraded (counted as "busy"), so grading never queues work without bound behind traffic.
MAX_GRADING = 4
# (sub-task, open circuits, quality/cost trade-off or None for the operator's)
RankFn = Callable[[SubTask, frozenset[str], float | None], Awaitable[list[Candidate]]]


def check_prompt(prompt: str, max_chars: int) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("the prompt is empty", "prompt")
    if len(prompt) > max_chars:
        raise InvalidInput(f"the prompt has {len(prompt)} characters; the limit is {max_chars}", "prompt")
    if "\x00" in prompt:
        raise InvalidInput("the prompt contains a NUL character", "prompt")
    return prompt.strip()


def _ignore(event: dict) -> None:
    pass


def plan_event(session_id: str, plan: TaskPlan, quoted: int) -> dict:
    """A streamed query's first event: its plan, once the quote is held."""
    tasks = [{"key": t.key, "capability": t.capability, "instruction": t.instruction,
              "depends_on": list(t.depends_on)} for t in plan.tasks]  # fmt: skip
    return {"event": "plan", "session_id": session_id, "planner": plan.planner, "quoted": str(quoted),
            "tasks": tasks}  # fmt: skip


def task_event(outcome: TaskOutcome, card: ModelCard | None) -> dict:
    """A streamed query's event for one answered (or failed) sub-task."""
    return {
        "event": "task",
        "key": outcome.task.key,
        "capability": outcome.task.capability,
        "status": str(outcome.status),
        "model": outcome.model_id,
        "node": (card.peer or {}).get("operator") if card is not None else None,  # a peer's model
        "cached": outcome.cached,
        "result": outcome.result,
        "error": outcome.error,
    }


def observe_task(outcome: TaskOutcome, cost: int) -> None:
    """A finished sub-task in the metrics: each attempt's latency, fallbacks, tokens, earnings."""
    capability = outcome.task.capability
    for attempt in outcome.attempts:
        if attempt.skipped or attempt.cached:
            continue  # never called, or answered from the cache: no model latency to observe
        result = "ok" if attempt.ok else "refused" if attempt.refused else "failed"
        metrics.SUBTASK_SECONDS.observe(
            attempt.latency_ms / 1000, model=attempt.model_id, capability=capability, outcome=result
        )
    if len(outcome.attempts) > 1:
        metrics.FALLBACKS.inc(len(outcome.attempts) - 1, capability=capability)
    if outcome.status == TaskStatus.DONE and not outcome.cached:  # tokens a model processed
        metrics.TOKENS_IN.inc(outcome.tokens_in, model=outcome.model_id)
        metrics.TOKENS_OUT.inc(outcome.tokens_out, model=outcome.model_id)
        metrics.FTNS_EARNED.inc(cost / FTNS, model=outcome.model_id)


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        sessions: SessionStore,
        billing: Billing,
        rank: RankFn,
        call: CallFn,
        breaker: CircuitBreaker | None = None,
        similarity: SimilarityFn | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.sessions = sessions
        self.billing = billing
        self.rank = rank
        self.call = call
        self.breaker = breaker or CircuitBreaker()
        self._cards: dict[str, ModelCard] = {}
        self._cards_at = float("-inf")
        self._cards_read: asyncio.Future | None = None  # the refresh in flight, shared
        self.tool_grader = ToolGrader()
        # Shadow grading against a reference model needs the router's embeddings (`similarity`).
        self.reference_grader = None
        if similarity is not None:
            self.reference_grader = ReferenceGrader(
                settings.grade_share, settings.grade_reference, self.cards, self.bounded_call, similarity,
                billing, settings.operator_account, settings.max_new_tokens,
            )  # fmt: skip
        self._grading: set[asyncio.Task] = set()
        self.cache = SubtaskCache(registry.db, settings.cache_ttl_s)  # prsm/nwtn/cache.py

    async def plan(self, prompt: str) -> tuple[TaskPlan, list[tuple[str, str]]]:
        """The plan and planner notes; the LLM planner's output is used only if it validates."""
        limits = (self.settings.max_plan_tasks, self.settings.max_plan_depth)
        notes: list[tuple[str, str]] = []
        if self.settings.planner_model:
            messages = llm_planner_messages(prompt)
            try:
                card = await asyncio.to_thread(self.registry.get, self.settings.planner_model)
                request = ModelCall(tuple(messages), 512, plan_response_format(limits[0]))
                output = await self.bounded_call(card, request)
                return plan_from_llm_output(output.text, *limits), [("llm planner", output.text)]
            except Exception as exc:  # any planner failure falls back to the deterministic plan
                notes.append(("llm planner rejected", str(exc)[:1000]))
        return validate(plan_deterministic(prompt), *limits), notes

    async def query(
        self, prompt: str, account: str, user: str | None = None, route: str | float | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> dict:  # fmt: skip
        """Answer `prompt`, paid by `account` (its API key's); `user` is the caller's own tag for
        its end user (OpenAI's `user`), recorded with the session (default: the account); `route`
        the quality/cost trade-off for this query (prsm/nwtn/route.py; None: the operator's).
        `on_event` (a streamed query's) hears of the plan once its quote is held, and of each
        sub-task as it is answered (`plan_event`, `task_event`)."""
        started = time.perf_counter()
        status = "cancelled"
        try:
            weight = None if route is None else tradeoff(route)
            view = await self._query(prompt, account, user, weight, started, on_event or _ignore)
            status = view["status"]
            return view
        except PRSMError as exc:  # the client's mistake (4xx), or no model could answer (5xx)
            status = "refused" if exc.status_code < 500 else "failed"
            raise
        except Exception:  # a bug: the alert rules count these with the failures
            status = "error"
            raise
        finally:
            metrics.QUERIES.inc(status=status)
            metrics.QUERY_SECONDS.observe(time.perf_counter() - started, status=status)

    async def _query(
        self, prompt: str, account: str, user: str | None, route: float | None, started: float,
        on_event: Callable[[dict], None],
    ) -> dict:  # fmt: skip
        # Every model call of this query ends by then (prsm/nwtn/execute.py).
        deadline = time.monotonic() + self.settings.query_deadline_s
        user = user or account
        prompt = check_prompt(prompt, self.settings.max_prompt_chars)
        session_id = str(uuid.uuid4())
        seq = itertools.count(1)
        flags = screen(prompt)
        flag_list = json.dumps([f.__dict__ for f in flags])
        safety = Step(
            next(seq), StepRole.SAFETY, prompt[:2000], flag_list, (time.perf_counter() - started) * 1000
        )

        if blocking(flags):
            empty = TaskPlan(tasks=(), planner="none")
            record = SessionRecord.new(
                session_id, account, user, prompt, empty, 0.0, flags, [safety], SessionStatus.BLOCKED
            )
            await self.sessions.start(record)
            refused = ", ".join(f.category for f in blocking(flags))
            raise PromptBlocked(f"refused by the safety screen ({refused}); session {session_id}", "prompt")

        t_plan = time.perf_counter()
        plan, notes = await self.plan(prompt)  # PlanRejected: nothing has been written yet
        plan_ms = (time.perf_counter() - t_plan) * 1000
        planned = [
            {
                "key": t.key,
                "capability": t.capability,
                "instruction": t.instruction,
                "depends_on": t.depends_on,
            }
            for t in plan.tasks
        ]
        steps = [safety]
        steps += [Step(next(seq), StepRole.PLANNER, title, detail, 0.0) for title, detail in notes]
        steps.append(Step(next(seq), StepRole.PLANNER, prompt[:2000], json.dumps(planned), plan_ms))
        # Every sub-task is ranked now, at once (one batched router call): the quote covers the
        # models NWTN would try for each, and execution tries them in this order.
        rankings = dict(zip([t.key for t in plan.tasks], await asyncio.gather(
            *(self.rank(t, frozenset(), route) for t in plan.tasks)), strict=True))  # fmt: skip
        cards = dict(await self.cards({c.model_id for r in rankings.values() for c in r[:MAX_ATTEMPTS]}))
        candidates = {
            key: [cards[c.model_id] for c in ranking[:MAX_ATTEMPTS] if c.model_id in cards]
            for key, ranking in rankings.items()
        }
        quoted = self.billing.quote_query(plan, candidates)
        clusters = {key: ranking[0].cluster for key, ranking in rankings.items() if ranking}
        charge = self.billing.open_query(session_id, account, quoted)
        record = SessionRecord.new(
            session_id,
            account,
            user,
            prompt,
            plan,
            plan_ms,
            flags,
            steps,
            hold_id=charge.hold_id,
            quoted=quoted,
            clusters=clusters,
        )
        with payment_refusal(account, quoted):
            await self.sessions.start(record, charge.hold)  # refused: nothing is written
        on_event(plan_event(session_id, plan, quoted))

        costs: list[tuple[ModelCard, int, int | None]] = []
        scope = None if self.settings.cache_scope == "global" else account  # whose answers a hit reuses

        async def from_cache(candidate: Candidate, call: ModelCall) -> ModelOutput | None:
            card = cards.get(candidate.model_id)
            if not self.cache.on or card is None or not cache.cacheable(card):
                return None
            hit = await asyncio.to_thread(self.cache.get, cache.key(card, call, scope))
            metrics.SUBTASK_CACHE.inc(outcome="hit" if hit else "miss")
            return hit

        graded: list[Finished] = []
        finished = 0
        last: Write = []  # the last sub-task's write rides with the outcome's: one commit fewer

        async def persist(outcome: TaskOutcome) -> None:
            nonlocal finished, last
            finished += 1
            card = None
            if outcome.status == TaskStatus.DONE:
                if outcome.model_id not in cards:  # registered a moment ago
                    cards.update(await self.cards({outcome.model_id}))
                card = cards.get(outcome.model_id)
            cost = 0
            if card is not None:
                cost = call_cost(card, outcome.tokens_in, outcome.tokens_out)
                if outcome.cached:  # the billing rule of a hit (prsm/nwtn/cache.py)
                    cost = cost * self.settings.cache_price_bps // BPS
                costs.append((card, cost, outcome.charged))
            observe_task(outcome, cost)
            canary_of = next(
                (r.get("canary") or "" for r in outcome.ranking if r["model_id"] == outcome.model_id), ""
            )
            finished_task = Finished(session_id, outcome, card, clusters.get(outcome.task.key, ""), canary_of)
            graded.append(finished_task)
            grades = self.tool_grader.grades(finished_task)
            write = self.sessions.task_write(record, outcome, task_steps(outcome, seq), cost, grades)
            if card is not None and not outcome.cached and self.cache.on and cache.cacheable(card):
                call = ModelCall(
                    messages_for(outcome.task, outcome.instruction), self.settings.max_new_tokens
                )
                answer = ModelOutput(outcome.result or "", outcome.tokens_in, outcome.tokens_out)
                write.append(cache.put(cache.key(card, call, scope), card.id, answer))
            if finished < len(plan.tasks):
                await self.sessions.commit(write)
            else:
                last = write
            on_event(task_event(outcome, card))

        try:

            async def ranked(task: SubTask, open_circuits: frozenset[str]) -> list[Candidate]:
                return [c for c in rankings[task.key] if not blocked(c.model_id, open_circuits)]

            outcomes = await execute(
                plan, ranked, self.call, self.breaker, self.settings.max_new_tokens, on_done=persist,
                deadline=deadline, cache=from_cache,
            )  # fmt: skip
            t_compile = time.perf_counter()
            compiled = compile_answer(outcomes)
        except (Exception, asyncio.CancelledError) as exc:
            # An unexpected failure, or the client went away (its work was cancelled with it): the
            # session ends failed, whatever else is cancelled meanwhile. The sub-tasks answered
            # by then are paid (their models ran, and a streamed query has sent their results),
            # with the fee; the rest of the hold is released. None answered: nothing is paid.
            error = "cancelled: the client went away" if isinstance(exc, asyncio.CancelledError) else str(exc)
            parts = self.billing.query_parts(costs, quoted, cards) if costs else {}
            record.finish(
                SessionStatus.FAILED, None, error[:2000], (time.perf_counter() - started) * 1000, parts
            )
            op = charge.capture(parts) if parts else charge.release()
            await asyncio.shield(self.sessions.finish(record, [], op, last))
            metrics.FTNS_CHARGED.inc(sum(parts.values()) / FTNS, kind="query")
            raise
        statuses = json.dumps({k: o.status for k, o in outcomes.items()})
        compile_step = Step(
            next(seq), StepRole.COMPILER, statuses, compiled.answer, (time.perf_counter() - t_compile) * 1000
        )
        errors = "; ".join(f"{o.task.key}: {o.error}" for o in outcomes.values() if o.error) or None
        latency_ms = (time.perf_counter() - started) * 1000
        if compiled.status == SessionStatus.FAILED:  # nothing answered: nothing charged
            parts: dict[str, int] = {}
            op = charge.release()
        else:
            parts = self.billing.query_parts(costs, quoted, cards)
            op = charge.capture(parts)
        record.finish(compiled.status, compiled.answer, errors, latency_ms, parts)
        await self.sessions.finish(record, [compile_step], op, last)
        self.grade_in_shadow(record, graded, seq)
        metrics.FTNS_CHARGED.inc(sum(parts.values()) / FTNS, kind="query")
        if compiled.status == SessionStatus.FAILED:
            failed = [o for o in outcomes.values() if o.status == TaskStatus.FAILED]
            if any(a.busy for o in failed for a in o.attempts):  # load, not the query: try again
                raise Overloaded(
                    f"the models this query needs are at capacity (session {session_id}): try again shortly",
                    "prompt", retry_after_s=RETRY_AFTER_S,
                )  # fmt: skip
            if failed and all(o.attempts and all(a.refused for a in o.attempts) for o in failed):
                raise QueryRefused(
                    f"the models could not work on this prompt (session {session_id}): {errors}", "prompt"
                )
            raise AllCandidatesFailed(f"no sub-task could be answered (session {session_id}): {errors}")
        return record.view(cards)

    def grade_in_shadow(self, record: SessionRecord, finished: list[Finished], seq: itertools.count) -> None:
        """Grade the sampled sub-tasks against the reference model, after the answer is written
        (prsm/nwtn/grade.py): each in a task of its own, at most MAX_GRADING at once."""
        grader = self.reference_grader
        if grader is None:
            return
        for item in finished:
            if item.outcome.cached or not grader.wants(item):  # a cached answer was graded when made
                continue
            if len(self._grading) >= MAX_GRADING:
                metrics.GRADES.inc(grader=grader.name, outcome="busy")
                continue
            job = asyncio.create_task(self._grade(grader, record, item, seq))
            self._grading.add(job)
            job.add_done_callback(self._grading.discard)

    async def grades_written(self) -> None:
        """Wait for the shadow grades in flight (a benchmark's or a test's end, a drain)."""
        while self._grading:
            await asyncio.gather(*self._grading, return_exceptions=True)

    async def _grade(self, grader: ReferenceGrader, record: SessionRecord, item: Finished, seq) -> None:
        try:
            verdict = await grader.grade(item)
            step = Step(next(seq), StepRole.GRADER, f"{item.outcome.task.key} answered by {item.card.id}",
                        json.dumps(verdict.note), verdict.latency_ms, item.outcome.task.key,
                        (verdict.note or {}).get("reference"))  # fmt: skip
            write: Write = [("step", row) for row in record.add_steps([step])]
            if item.canary_of and verdict.grades:  # the canary's test counts it (prsm/canary.py)
                write.append(canary.grade_write(item.card.id, item.cluster, verdict.grades[0].score))
            await self.sessions.commit(write + quality.writes(verdict.grades))
        except Exception as exc:  # noqa: BLE001 (a shadow grade never fails anything else)
            metrics.GRADES.inc(grader=grader.name, outcome="failed")
            logs.event(
                "grading failed",
                logging.WARNING,
                session_id=record.id,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )

    async def cards(self, needed: set[str]) -> dict[str, ModelCard]:
        """Registry cards for the quote and the answer's sources, re-read at most once a second
        (or when a model is missing, e.g. registered a moment ago)."""
        if needed <= self._cards.keys() and time.monotonic() - self._cards_at <= CARDS_REFRESH_S:
            return self._cards
        asked = time.monotonic()
        await self._refresh_cards()
        if not needed <= self._cards.keys() and self._cards_at < asked:
            await self._refresh_cards()  # the read it shared began before it asked: one of its own
        return self._cards

    async def _refresh_cards(self) -> None:
        """One registry read at a time: the queries that find the copy stale (or missing a card)
        meanwhile wait for it, instead of each reading (under load a read takes tens of ms, and
        every query that arrived in that time started its own)."""
        if self._cards_read is None or self._cards_read.done():
            self._cards_read = asyncio.ensure_future(self._read_cards())
        await asyncio.shield(self._cards_read)  # a caller that goes away leaves it running

    async def _read_cards(self) -> None:
        started = time.monotonic()  # the copy is as fresh as the read's start
        cards = {c.id: c for c in await asyncio.to_thread(self.registry.list)}
        self._cards, self._cards_at = cards, started

    async def complete(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None,
        account: str, key: str | None = None,
    ) -> tuple[ModelOutput, dict]:  # fmt: skip
        """One chat completion from one registered model (OpenAI-compatible endpoint), paid by
        `account` like a one-task query without the orchestration fee; `key`: the call's own id
        (a peer node's), answered once (prsm/ftns/billing.py)."""
        card, call, cards = await self._completion(model_id, messages, max_tokens, response_format)
        output, charge = await self.billing.completion(
            account, card, call, lambda: self.bounded_call(card, call), cards, key
        )
        self._count_completion(card, output, charge)
        return output, charge

    async def _completion(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None
    ) -> tuple[ModelCard, ModelCall, dict[str, ModelCard]]:
        """A chat completion's card (enabled), its call within the budget, and the cards its
        charge needs (the teacher's, for the royalty)."""
        card = await asyncio.to_thread(self.registry.get, model_id)
        if card.disabled:
            raise UnknownModel(f"model {model_id!r} is disabled by the operator", "model")
        budget = min(max_tokens or self.settings.max_new_tokens, 4 * self.settings.max_new_tokens)
        response_format = self._response_format(card, response_format)
        call = ModelCall(tuple(messages), budget, response_format)
        return card, call, await self.cards({card.teacher} - {None})

    def _response_format(self, card: ModelCard, asked: dict | None) -> dict | None:
        """What a completion may ask of `card`'s output, checked before anything is held: text
        from any model; a remote endpoint gets the client's `response_format` as sent (it decides
        what it supports); PRSM's own language models decode under the task-plan schema and
        nothing else, with at most the planner's limit of sub-tasks. Anything else is the
        client's mistake (422 naming response_format), not a failure of the model."""
        if asked is None or asked.get("type") == "text":
            return None
        if card.kind == ModelKind.OPENAI:
            return asked
        schema = asked.get("json_schema")
        if (
            card.kind != ModelKind.TRANSFORMERS
            or asked.get("type") != "json_schema"
            or not isinstance(schema, dict)
            or schema.get("name") != PLAN_SCHEMA_NAME
        ):
            decodes = (
                f"text or the {PLAN_SCHEMA_NAME!r} json_schema"
                if card.kind == ModelKind.TRANSFORMERS
                else "text"
            )
            raise InvalidInput(f"model {card.id!r} answers only {decodes}", "response_format")
        limit = self.settings.max_plan_tasks
        max_tasks = schema.get("max_tasks", limit)
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or not 1 <= max_tasks <= limit:
            raise InvalidInput(f"max_tasks is a whole number from 1 to {limit}", "response_format")
        return plan_response_format(max_tasks)

    async def complete_stream(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None,
        account: str, receipt: dict,
    ) -> AsyncIterator[ModelOutput]:  # fmt: skip
        """`complete`, streamed (`stream: true`): pieces of the answer as the model makes them;
        `receipt` gets the charge when the stream ends, the same as unstreamed for the same
        answer, or what ran when it ends early (prsm/ftns/billing.py's `completion_stream`)."""
        card, call, cards = await self._completion(model_id, messages, max_tokens, response_format)
        deadline = time.monotonic() + self.settings.query_deadline_s
        pieces = self.billing.completion_stream(
            account, card, call, self.stream(card, call, deadline), cards, receipt
        )
        last = None
        try:
            async for piece in pieces:
                last = piece
                yield piece
        finally:
            try:
                await pieces.aclose()  # charged (or released) before the stream's caller goes on
            finally:
                self._count_completion(card, last, receipt)

    @staticmethod
    def _count_completion(card: ModelCard, last: ModelOutput | None, charge: dict) -> None:
        """A completion's tokens and charge in the metrics (a completion's charge is its model's
        cost); `last` None: nothing was answered."""
        if last is None:
            return
        charged = int(charge.get("charged") or 0) / FTNS
        metrics.TOKENS_IN.inc(last.tokens_in, model=card.id)
        metrics.TOKENS_OUT.inc(last.tokens_out, model=card.id)
        metrics.FTNS_CHARGED.inc(charged, kind="completion")
        metrics.FTNS_EARNED.inc(charged, model=card.id)

    async def stream(self, card: ModelCard, call: ModelCall, deadline: float) -> AsyncIterator[ModelOutput]:
        """One model call's answer in pieces (`call.stream` where the deployment streams; one
        piece otherwise), ended at `deadline` like every call."""
        opened = getattr(self.call, "stream", None)
        if opened is None:
            yield await self.bounded_call(card, call)
            return
        pieces = opened(card.id, card.kind, call)
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    piece = await within(anext(pieces), max(left, 0))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    limit = self.settings.query_deadline_s
                    raise ModelCallFailed(f"{card.id} did not finish within {limit:g} s", "model") from None
                yield piece
        finally:
            # A piece still awaited past the deadline is being cancelled: the stream closes
            # with it (aclose would find it running).
            with contextlib.suppress(RuntimeError):
                await pieces.aclose()

    async def bounded_call(self, card: ModelCard, call: ModelCall) -> ModelOutput:
        """One model call within the query deadline (cancelled past it, on its replica too)."""
        limit = self.settings.query_deadline_s
        try:
            return await within(self.call(card.id, card.kind, call), limit)
        except TimeoutError:
            raise ModelCallFailed(f"{card.id} gave no answer within {limit:g} s", "model") from None
