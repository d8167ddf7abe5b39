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

from prsm.backends import ModelCall, ModelOutput
from prsm.errors import AllCandidatesFailed, InvalidInput, PromptBlocked
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
        record = SessionRecord.new(session_id, user, prompt, plan, plan_ms, flags, steps)
        await self.store.start(record)

        async def persist(outcome: TaskOutcome) -> None:
            await self.store.finish_task(record, outcome, task_steps(outcome, seq))

        outcomes = await execute(
            plan, self.rank, self.call, self.breaker, self.settings.max_new_tokens, on_done=persist
        )
        t_compile = time.perf_counter()
        compiled = compile_answer(outcomes)
        compile_step = Step(
            next(seq),
            "compiler",
            json.dumps({k: o.status for k, o in outcomes.items()}),
            compiled.answer,
            (time.perf_counter() - t_compile) * 1000,
        )
        errors = "; ".join(f"{o.task.key}: {o.error}" for o in outcomes.values() if o.error)
        latency_ms = (time.perf_counter() - started) * 1000
        await self.store.finish(
            record, compiled.status, compiled.answer, errors or None, latency_ms, [compile_step]
        )
        if compiled.status == "failed":
            raise AllCandidatesFailed(f"no sub-task could be answered (session {session_id}): {errors}")
        used = {t["assigned_model"] for t in record.tasks if t["assigned_model"]}
        return record.view(await self.cards(used))

    async def cards(self, needed: set[str]) -> dict[str, ModelCard]:
        """Registry cards for the answer's sources, re-read at most once a second (or when a
        model is missing, e.g. registered a moment ago)."""
        if time.monotonic() - self._cards_at > 1.0 or not needed <= self._cards.keys():
            self._cards = {c.id: c for c in await asyncio.to_thread(self.registry.list)}
            self._cards_at = time.monotonic()
        return self._cards

    async def complete(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None = None
    ) -> ModelOutput:
        """One chat completion from one registered model (OpenAI-compatible endpoint)."""
        card = await asyncio.to_thread(self.registry.get, model_id)
        budget = min(max_tokens or self.settings.max_new_tokens, 4 * self.settings.max_new_tokens)
        return await self.call(card.id, card.kind, ModelCall(tuple(messages), budget, response_format))


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
