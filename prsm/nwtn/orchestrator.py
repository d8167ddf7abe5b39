"""NWTN: one query from prompt to traced answer (screen, plan, route, execute, compile, persist).

Ray-free: the Serve deployment hands in `rank` (the Router deployment) and `call` (the model
replica deployments); tests hand in in-process versions of the same real components.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from contextlib import contextmanager

from prsm.backends import ModelCall, ModelOutput
from prsm.errors import AllCandidatesFailed, InvalidInput, PromptBlocked
from prsm.ftns.amounts import format_ftns
from prsm.ftns.ledger import InsufficientFunds, UnknownAccount, capture_op, hold_op, release_op
from prsm.ftns.pricing import TEMPLATE_TOKENS, call_cost, estimate_tokens, quote, split
from prsm.nwtn.compile import compile_answer
from prsm.nwtn.execute import CallFn, CircuitBreaker, RankFn, TaskOutcome, execute
from prsm.nwtn.plan import (
    TaskPlan,
    llm_planner_messages,
    plan_deterministic,
    plan_from_llm_output,
    plan_response_format,
)
from prsm.registry import ModelCard, Registry
from prsm.safety import blocking, screen
from prsm.sessions import SessionRecord, SessionStore, Step
from prsm.settings import Settings


def check_prompt(prompt: str, max_chars: int) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("the prompt is empty", "prompt")
    if len(prompt) > max_chars:
        raise InvalidInput(f"the prompt has {len(prompt)} characters; the limit is {max_chars}", "prompt")
    if "\x00" in prompt:
        raise InvalidInput("the prompt contains a NUL character", "prompt")
    return prompt.strip()


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: SessionStore,
        rank: RankFn,
        call: CallFn,
        breaker: CircuitBreaker | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.rank = rank
        self.call = call
        self.breaker = breaker or CircuitBreaker()
        self.shares = settings.shares  # refuses shares that do not add up, at start
        self._cards: dict[str, ModelCard] = {}
        self._cards_at = float("-inf")

    async def plan(self, prompt: str) -> tuple[TaskPlan, list[tuple[str, str]]]:
        """The plan and planner notes; the LLM planner's output is used only if it validates."""
        limits = (self.settings.max_plan_tasks, self.settings.max_plan_depth)
        notes: list[tuple[str, str]] = []
        if self.settings.planner_model:
            messages = llm_planner_messages(prompt)
            try:
                card = await asyncio.to_thread(self.registry.get, self.settings.planner_model)
                request = ModelCall(tuple(messages), 512, plan_response_format(limits[0]))
                output = await self.call(card.id, card.kind, request)
                return plan_from_llm_output(output.text, *limits), [("llm planner", output.text)]
            except Exception as exc:  # any planner failure falls back to the deterministic plan
                notes.append(("llm planner rejected", str(exc)[:1000]))
        plan = plan_deterministic(prompt).validate(*limits)
        return plan, notes

    async def query(self, prompt: str, user: str) -> dict:
        started = time.perf_counter()
        prompt = check_prompt(prompt, self.settings.max_prompt_chars)
        session_id = str(uuid.uuid4())
        seq = itertools.count(1)
        flags = screen(prompt)
        safety_step = Step(
            next(seq),
            "safety",
            prompt[:2000],
            json.dumps([f.__dict__ for f in flags]),
            (time.perf_counter() - started) * 1000,
        )

        if blocking(flags):
            empty = TaskPlan(tasks=(), planner="none")
            record = SessionRecord.new(session_id, user, prompt, empty, 0.0, flags, [safety_step], "blocked")
            await self.store.start(record)
            raise PromptBlocked(
                f"refused by the safety screen ({', '.join(f.category for f in blocking(flags))}); "
                f"session {session_id}",
                "prompt",
            )

        t_plan = time.perf_counter()
        plan, notes = await self.plan(prompt)  # PlanRejected: nothing has been written yet
        plan_ms = (time.perf_counter() - t_plan) * 1000
        plan_output = json.dumps(
            [
                {
                    "key": t.key,
                    "capability": t.capability,
                    "instruction": t.instruction,
                    "depends_on": t.depends_on,
                }
                for t in plan.tasks
            ]
        )
        steps = [safety_step]
        steps += [Step(next(seq), "planner", title, detail, 0.0) for title, detail in notes]
        steps.append(Step(next(seq), "planner", prompt[:2000], plan_output, plan_ms))
        cards = dict(await self.cards(set()))
        quoted = quote(plan, list(cards.values()), self.settings.max_new_tokens, self.settings.query_fee)
        # Keys made from the new session id cannot be retries: the ledger skips the replay lookup.
        hold = hold_op(user, quoted, f"query:{session_id}:hold", f"query {session_id}", fresh=True)
        release = release_op(
            hold.hold_id, f"query:{session_id}:release", f"query {session_id} failed", fresh=True
        )
        record = SessionRecord.new(
            session_id, user, prompt, plan, plan_ms, flags, steps, hold_id=hold.hold_id, quoted=quoted
        )
        with payment_refusal(user, quoted):
            await self.store.start(record, hold)  # refused: nothing is written

        costs: list[tuple[ModelCard, int]] = []

        async def persist(outcome: TaskOutcome) -> None:
            cost = 0
            if outcome.status == "done" and outcome.model_id not in cards:  # registered a moment ago
                cards.update(await self.cards({outcome.model_id}))
            card = cards.get(outcome.model_id) if outcome.status == "done" else None
            if card is not None:
                cost = call_cost(card, outcome.tokens_in, outcome.tokens_out)
                costs.append((card, cost))
            await self.store.finish_task(record, outcome, task_steps(outcome, seq), cost)

        try:
            outcomes = await execute(
                plan, self.rank, self.call, self.breaker, self.settings.max_new_tokens, on_done=persist
            )
            t_compile = time.perf_counter()
            compiled = compile_answer(outcomes)
        except Exception as exc:  # an unexpected failure: the session ends failed, the hold is released
            latency_ms = (time.perf_counter() - started) * 1000
            await self.store.finish(record, "failed", None, str(exc)[:2000], latency_ms, [], release)
            raise
        compile_step = Step(
            next(seq),
            "compiler",
            json.dumps({k: o.status for k, o in outcomes.items()}),
            compiled.answer,
            (time.perf_counter() - t_compile) * 1000,
        )
        errors = "; ".join(f"{o.task.key}: {o.error}" for o in outcomes.values() if o.error)
        latency_ms = (time.perf_counter() - started) * 1000
        if compiled.status == "failed":  # nothing answered: nothing charged
            parts: dict[str, int] = {}
            charge = release
        else:
            parts = split(costs, self.settings.query_fee, quoted, self.shares, cards)
            charge = capture_op(
                hold.hold_id, parts, f"query:{session_id}:capture", f"query {session_id}", fresh=True
            )
        await self.store.finish(
            record,
            compiled.status,
            compiled.answer,
            errors or None,
            latency_ms,
            [compile_step],
            charge,
            parts,
        )
        if compiled.status == "failed":
            raise AllCandidatesFailed(f"no sub-task could be answered (session {session_id}): {errors}")
        return record.view(cards)

    async def cards(self, needed: set[str]) -> dict[str, ModelCard]:
        """Registry cards for the answer's sources, re-read at most once a second (or when a
        model is missing, e.g. registered a moment ago)."""
        if time.monotonic() - self._cards_at > 1.0 or not needed <= self._cards.keys():
            self._cards = {c.id: c for c in await asyncio.to_thread(self.registry.list)}
            self._cards_at = time.monotonic()
        return self._cards

    async def complete(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None = None,
        user: str = "anonymous",
    ) -> tuple[ModelOutput, dict]:  # fmt: skip
        """One chat completion from one registered model (OpenAI-compatible endpoint), paid like
        a one-task query without the orchestration fee: hold the quote, capture the usage."""
        card = await asyncio.to_thread(self.registry.get, model_id)
        budget = min(max_tokens or self.settings.max_new_tokens, 4 * self.settings.max_new_tokens)
        tokens_in = estimate_tokens(json.dumps(messages)) + TEMPLATE_TOKENS
        quoted = call_cost(card, tokens_in, budget)
        call = ModelCall(tuple(messages), budget, response_format)
        if quoted == 0:  # a free model
            return await self.call(card.id, card.kind, call), {"quoted": "0", "charged": "0", "split": {}}
        ledger, key = self.store.ledger, f"completion:{uuid.uuid4()}"
        hold = hold_op(user, quoted, f"{key}:hold", f"completion {model_id}")
        with payment_refusal(user, quoted):
            await asyncio.to_thread(ledger.post, hold)
        try:
            output = await self.call(card.id, card.kind, call)
        except BaseException:
            await asyncio.to_thread(ledger.post, release_op(hold.hold_id, f"{key}:release"))
            raise
        cost = call_cost(card, output.tokens_in, output.tokens_out)
        parts = split([(card, cost)], 0, quoted, self.shares, await self.cards({card.teacher} - {None}))
        await asyncio.to_thread(ledger.post, capture_op(hold.hold_id, parts, f"{key}:capture"))
        charge = {"quoted": str(quoted), "charged": str(sum(parts.values())),
                  "split": {a: str(v) for a, v in sorted(parts.items())}}  # fmt: skip
        return output, charge


@contextmanager
def payment_refusal(user: str, quoted: int):
    """A hold the account cannot cover becomes one 402 that says what is needed."""
    try:
        yield
    except (UnknownAccount, InsufficientFunds) as exc:
        available = getattr(exc, "available", 0)
        raise InsufficientFunds(
            f"this is quoted at {format_ftns(quoted)} and account {user!r} holds {format_ftns(available)}"
            + ("" if available else f" (no account or empty; on a dev stack: prsm ftns faucet {user} 1)"),
            "user",
            needed=quoted,
            available=available,
        ) from exc


def task_steps(outcome: TaskOutcome, seq: itertools.count) -> list[Step]:
    key = outcome.task.key
    steps = []
    if outcome.ranking or outcome.status == "failed":
        top = [{k: c[k] for k in ("model_id", "score", "tag", "similarity")} for c in outcome.ranking[:3]]
        steps.append(Step(next(seq), "router", outcome.instruction, json.dumps(top), outcome.route_ms, key))
    for attempt in outcome.attempts:
        output = outcome.result if attempt.ok else f"error: {attempt.error}"
        steps.append(
            Step(
                next(seq),
                "model",
                outcome.instruction,
                output or "",
                attempt.latency_ms,
                key,
                attempt.model_id,
            )
        )
    if outcome.status == "skipped":
        steps.append(Step(next(seq), "router", outcome.instruction, outcome.error or "", 0.0, key))
    return steps
