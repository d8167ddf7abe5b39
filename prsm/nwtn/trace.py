"""The trace document: a session's plan, every reasoning step, its safety flags, its outcome.

A `SessionRecord` is a session as rows (dicts keyed by column): NWTN keeps it in memory while
the query runs and answers from it; GET /v1/sessions/{id} rebuilds it from the database. Both
go through `view`, so a query's response and its stored trace are the same document.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from prsm.db.models import iso_utc, utcnow
from prsm.nwtn.compile import sources, verified
from prsm.nwtn.execute import TaskOutcome
from prsm.safety import Flag
from prsm.types import ModelCard, SessionStatus, StepRole, TaskPlan, TaskStatus

SESSION_FIELDS = ("id", "account", "user", "prompt", "status", "planner", "answer", "error", "created_at",
                  "finished_at", "plan_ms", "latency_ms", "hold_id", "quoted", "charged",
                  "charge_split")  # fmt: skip
SESSION_RESULT_FIELDS = ("status", "answer", "error", "latency_ms", "finished_at", "charged", "charge_split")
TASK_RESULT_FIELDS = ("instruction", "status", "assigned_model", "result", "error", "tokens_in",
                      "tokens_out", "latency_ms", "ranking", "cost", "cached")  # fmt: skip
TASK_FIELDS = ("session_id", "key", "position", "depends_on", "capability", "cluster", *TASK_RESULT_FIELDS)
STEP_FIELDS = ("session_id", "seq", "role", "task_key", "model_id", "input", "output", "latency_ms")
FLAG_FIELDS = ("session_id", "category", "severity", "detail")


@dataclass(frozen=True)
class Step:
    seq: int
    role: StepRole
    input: str
    output: str
    latency_ms: float
    task_key: str | None = None
    model_id: str | None = None

    def row(self, session_id: str) -> dict:
        return {
            "session_id": session_id,
            "seq": self.seq,
            "role": str(self.role),
            "task_key": self.task_key,
            "model_id": self.model_id,
            "input": self.input,
            "output": self.output,
            "latency_ms": self.latency_ms,
        }


class SessionRecord:
    def __init__(self, session: dict, tasks: list[dict], steps: list[dict], flags: list[dict]):
        self.session, self.tasks, self.steps, self.flags = session, tasks, steps, flags

    @property
    def id(self) -> str:
        return self.session["id"]

    @classmethod
    def new(
        cls, session_id: str, account: str, user: str, prompt: str, plan: TaskPlan, plan_ms: float, flags: list[Flag],
        steps: list[Step], status: SessionStatus = SessionStatus.RUNNING, hold_id: str | None = None,
        quoted: int | None = None, clusters: dict[str, str] | None = None,
    ) -> SessionRecord:  # fmt: skip
        session = {
            "id": session_id, "account": account, "user": user, "prompt": prompt, "status": str(status), "planner": plan.planner,
            "answer": None, "error": None, "created_at": utcnow(), "finished_at": None, "plan_ms": plan_ms,
            "latency_ms": None, "hold_id": hold_id, "quoted": quoted, "charged": None, "charge_split": None,
        }  # fmt: skip
        tasks = [
            {
                "session_id": session_id,
                "key": t.key,
                "position": i,
                "depends_on": list(t.depends_on),
                "capability": str(t.capability),
                "cluster": (clusters or {}).get(t.key, ""),
                "instruction": t.instruction,
                "status": str(TaskStatus.PENDING),
                "assigned_model": None,
                "result": None,
                "error": None,
                "tokens_in": 0,
                "tokens_out": 0,
                "latency_ms": None,
                "ranking": [],
                "cost": 0,
                "cached": False,
            }  # fmt: skip
            for i, t in enumerate(plan.tasks)
        ]
        flag_rows = [
            {"session_id": session_id, "category": f.category, "severity": f.severity, "detail": f.detail}
            for f in flags
        ]
        record = cls(session, tasks, [], flag_rows)
        record.add_steps(steps)
        return record

    def add_steps(self, steps: list[Step]) -> list[dict]:
        rows = [step.row(self.id) for step in steps]
        self.steps.extend(rows)
        return rows

    def finish_task(self, outcome: TaskOutcome, cost: int) -> dict:
        task = next(t for t in self.tasks if t["key"] == outcome.task.key)
        task.update(
            instruction=outcome.instruction,
            status=str(outcome.status),
            assigned_model=outcome.model_id,
            result=outcome.result,
            error=outcome.error,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            latency_ms=outcome.latency_ms,
            ranking=outcome.ranking,
            cost=cost,
            cached=outcome.cached,
        )
        return task

    def finish(
        self, status: SessionStatus, answer: str | None, error: str | None, latency_ms: float,
        split: dict[str, int] | None,
    ) -> dict:  # fmt: skip
        """Record the outcome; `split` is what the charge paid whom (None: nothing was held)."""
        self.session.update(
            status=str(status), answer=answer, error=error, latency_ms=latency_ms, finished_at=utcnow()
        )
        if split is not None:
            self.session.update(
                charged=sum(split.values()), charge_split={a: str(v) for a, v in sorted(split.items())}
            )
        return self.session

    def view(self, cards: dict[str, ModelCard]) -> dict:
        s = self.session
        tasks = sorted(self.tasks, key=lambda t: t["position"])
        assignments = [(t["key"], t["assigned_model"]) for t in tasks if t["assigned_model"]]
        return {
            "session_id": s["id"],
            "account": s["account"],
            "user": s["user"],
            "prompt": s["prompt"],
            "status": s["status"],
            "planner": s["planner"],
            "answer": s["answer"],
            "error": s["error"],
            "created_at": iso_utc(s["created_at"]),
            "finished_at": iso_utc(s["finished_at"]),
            "plan_ms": s["plan_ms"],
            "latency_ms": s["latency_ms"],
            # FTNS, decimal strings of base units: quoted (held) before running, charged after.
            "cost": {
                "quoted": None if s["quoted"] is None else str(s["quoted"]),
                "charged": None if s["charged"] is None else str(s["charged"]),
                "split": dict(s["charge_split"] or {}),
                "hold_id": s["hold_id"],
            },
            "tasks": [
                {
                    "key": t["key"],
                    "instruction": t["instruction"],
                    "capability": t["capability"],
                    "cluster": t.get("cluster") or None,
                    "depends_on": list(t["depends_on"]),
                    "status": t["status"],
                    "model": t["assigned_model"],
                    # the peer node (operator address) whose model answered; null: this node's
                    "node": (cards[t["assigned_model"]].peer or {}).get("operator")
                    if t["assigned_model"] in cards
                    else None,
                    "result": t["result"],
                    # true: computed by an exact tool; false: numbers from a language model,
                    # unchecked (the answer says so too); null: no result or no numbers in it
                    "verified": verified(
                        cards[t["assigned_model"]].kind if t["assigned_model"] in cards else None, t["result"]
                    ),
                    "error": t["error"],
                    "latency_ms": t["latency_ms"],
                    "tokens_in": t["tokens_in"],
                    "tokens_out": t["tokens_out"],
                    "ranking": t["ranking"],
                    "cost": str(t["cost"]),
                    # answered from the sub-task cache (the model did not run; a hit's price)
                    "cached": bool(t.get("cached")),
                }
                for t in tasks
            ],
            "steps": [
                {
                    "seq": st["seq"],
                    "role": st["role"],
                    "task": st["task_key"],
                    "model": st["model_id"],
                    "input": st["input"],
                    "output": st["output"],
                    "latency_ms": st["latency_ms"],
                }
                for st in sorted(self.steps, key=lambda st: st["seq"])
            ],
            "sources": sources(assignments, cards),
            "safety_flags": [
                {"category": f["category"], "severity": f["severity"], "detail": f["detail"]}
                for f in self.flags
            ],
            "feedback": [],  # the account's ratings, once given (POST /v1/sessions/{id}/feedback)
        }


def task_steps(outcome: TaskOutcome, seq: itertools.count) -> list[Step]:
    """The router's and the models' steps of one finished sub-task."""
    key = outcome.task.key
    steps = []
    if outcome.ranking or outcome.status == TaskStatus.FAILED:
        top = [{k: c[k] for k in ("model_id", "score", "tag", "similarity")} for c in outcome.ranking[:3]]
        steps.append(
            Step(next(seq), StepRole.ROUTER, outcome.instruction, json.dumps(top), outcome.route_ms, key)
        )
    for attempt in outcome.attempts:
        output = outcome.result if attempt.ok else f"error: {attempt.error}"
        steps.append(
            Step(
                next(seq),
                StepRole.MODEL,
                outcome.instruction,
                output or "",
                attempt.latency_ms,
                key,
                attempt.model_id,
            )
        )
    if outcome.status == TaskStatus.SKIPPED:
        steps.append(Step(next(seq), StepRole.ROUTER, outcome.instruction, outcome.error or "", 0.0, key))
    return steps
