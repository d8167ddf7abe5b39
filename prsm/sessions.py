"""Query sessions in the database: the plan, every reasoning step, safety flags, the outcome.

A session row is written only once its plan is valid, together with its tasks, in one
transaction: a rejected prompt or plan leaves nothing behind. Each finished sub-task is then
written as it finishes, so a crash mid-query still leaves every finished step readable.

Writes go through a group committer: one writer thread per process folds the writes of all
concurrent queries into few transactions. SQLite allows one writer at a time, and many small
transactions from many threads spend their time waiting on each other's locks. A query's FTNS
hold is posted in the transaction that writes its session, and its capture (or release) in the
one that writes its outcome: a query whose hold is refused leaves nothing behind, and charging
costs no commit of its own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, case, select
from sqlalchemy.orm import Session, sessionmaker

from prsm.db.models import (
    ModelCardRow,
    PlanTask,
    QuerySession,
    ReasoningStep,
    SafetyFlag,
    iso_utc,
    utcnow,
)
from prsm.errors import SessionNotFound
from prsm.ftns.ledger import Ledger, Op
from prsm.nwtn.compile import sources
from prsm.nwtn.execute import TaskOutcome
from prsm.nwtn.plan import TaskPlan
from prsm.registry import LATENCY_EWMA_WEIGHT, ModelCard, card_from_row
from prsm.safety import Flag

# (statement name in STATEMENTS, its parameters), or ("ledger", Op): at most one Op per write.
Write = list[tuple[str, dict | Op]]

# When the last batch held more than one write (queries are arriving concurrently), the writer
# waits this long before draining the queue: fewer, bigger transactions cost less CPU per query
# (benchmarks/serve_overhead.py). A lone query never waits.
LINGER_S = 0.002


@dataclass(frozen=True)
class Step:
    seq: int
    role: str
    input: str
    output: str
    latency_ms: float
    task_key: str | None = None
    model_id: str | None = None

    def row(self) -> dict:
        return {
            "seq": self.seq,
            "role": self.role,
            "task_key": self.task_key,
            "model_id": self.model_id,
            "input": self.input,
            "output": self.output,
            "latency_ms": self.latency_ms,
        }


class GroupCommitter:
    """Runs writes submitted from any thread or event loop in batched transactions.

    A write is a list of (statement name, parameters). A batch runs each statement once with
    the parameters of every write in it (executemany), in the order of STATEMENTS, so inserts
    come before the updates that refer to them. A batch that fails is retried one write per
    transaction, so one bad write fails only its own caller. Each caller's await returns once
    its write is committed.
    """

    def __init__(self, ledger: Ledger, max_batch: int = 512):
        self._ledger = ledger
        self._engine = ledger.engine  # takes the write lock up front: the ledger checks balances
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, write: Write) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_thread()
        self._queue.put((write, loop, future))
        await future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="prsm-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        busy = False
        while True:
            batch = [self._queue.get()]
            if busy:
                time.sleep(LINGER_S)
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            busy = len(batch) > 1
            try:
                results = self._commit([write for write, _, _ in batch])
            except Exception:
                results = [self._alone(write) for write, _, _ in batch]
            for (_, loop, future), error in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_settle, future, error)

    def _commit(self, writes: list[Write]) -> list[Exception | None]:
        """One transaction: the ledger operations first; a write whose operation is refused
        (e.g. insufficient funds) is left out whole and gets the refusal as its result."""
        errors: list[Exception | None] = [None] * len(writes)
        ops = [(i, op) for i, write in enumerate(writes) for name, op in write if name == "ledger"]
        assert len({i for i, _ in ops}) == len(ops), "at most one ledger operation per write"
        with self._engine.begin() as conn:
            if ops:
                posted = self._ledger.post_many([op for _, op in ops], conn)
                for (i, _), result in zip(ops, posted, strict=True):
                    if isinstance(result, Exception):
                        errors[i] = result
            grouped: dict[str, list[dict]] = {name: [] for name in STATEMENTS}
            for write, error in zip(writes, errors, strict=True):
                if error is None:
                    for name, params in write:
                        if name != "ledger":
                            grouped[name].append(params)
            for name, statement in STATEMENTS.items():
                if grouped[name]:
                    conn.execute(statement, grouped[name])
        return errors

    def _alone(self, write: Write) -> Exception | None:
        try:
            return self._commit([write])[0]
        except Exception as exc:  # handed to the caller that submitted this write
            return exc


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class SessionStore:
    def __init__(self, sessions: sessionmaker[Session], ledger: Ledger | None = None):
        self._sessions = sessions
        self.ledger = ledger or Ledger(sessions.kw["bind"].url.render_as_string(hide_password=False))
        self._committer = GroupCommitter(self.ledger)

    async def start(self, record: SessionRecord, hold: Op | None = None) -> None:
        """Write the session, its plan and first steps, with the query's hold if it has one."""
        write: Write = [("ledger", hold)] if hold else []
        write.append(("session", dict(record.session)))
        write += [("task", dict(t)) for t in record.tasks]
        write += [("flag", dict(f)) for f in record.flags]
        write += [("step", dict(st)) for st in record.steps]
        await self._committer.submit(write)

    async def finish_task(
        self, record: SessionRecord, outcome: TaskOutcome, steps: list[Step], cost: int = 0
    ) -> None:
        task = record.finish_task(outcome, cost)
        result = {"b_session_id": task["session_id"], "b_key": task["key"]}
        result |= {k: task[k] for k in TASK_RESULT_FIELDS}
        write: Write = [("task_result", result)]
        write += [("step", row) for row in record.add_steps(steps)]
        write += [
            ("model_ok", {"b_id": a.model_id, "b_latency": a.latency_ms})
            if a.ok
            else ("model_failed", {"b_id": a.model_id})
            for a in outcome.attempts
        ]
        await self._committer.submit(write)

    async def finish(
        self, record: SessionRecord, status: str, answer: str | None, error: str | None, latency_ms: float,
        steps: list[Step], charge: Op | None = None, split: dict[str, int] | None = None,
    ) -> None:  # fmt: skip
        """Write the outcome, with the capture (`split` is what it pays whom) or the release."""
        record.session.update(
            status=status, answer=answer, error=error, latency_ms=latency_ms, finished_at=utcnow()
        )
        if charge is not None:
            split = split or {}
            record.session.update(
                charged=sum(split.values()), charge_split={a: str(v) for a, v in sorted(split.items())}
            )
        result = {"b_id": record.session["id"]}
        result |= {k: record.session[k] for k in SESSION_RESULT_FIELDS}
        write: Write = [("ledger", charge)] if charge else []
        write.append(("session_result", result))
        write += [("step", row) for row in record.add_steps(steps)]
        await self._committer.submit(write)

    def trace(self, session_id: str) -> dict:
        with self._sessions() as s:
            row = s.get(QuerySession, session_id)
            if row is None:
                raise SessionNotFound(f"no session {session_id!r}", "session_id")
            tasks = s.scalars(select(PlanTask).where(PlanTask.session_id == session_id)).all()
            steps = s.scalars(select(ReasoningStep).where(ReasoningStep.session_id == session_id)).all()
            flags = s.scalars(select(SafetyFlag).where(SafetyFlag.session_id == session_id)).all()
            ids = {t.assigned_model for t in tasks if t.assigned_model}
            cards = {
                r.id: card_from_row(r)
                for r in s.scalars(select(ModelCardRow).where(ModelCardRow.id.in_(ids)))
            }
            record = SessionRecord(
                session=_columns(row, SESSION_FIELDS),
                tasks=[_columns(t, TASK_FIELDS) for t in tasks],
                steps=[_columns(st, STEP_FIELDS) for st in steps],
                flags=[_columns(f, FLAG_FIELDS) for f in flags],
            )
            return record.view(cards)


# Core tables: the write path skips the ORM's unit of work (it costs more than the SQL here).
SESSIONS, TASKS = QuerySession.__table__, PlanTask.__table__
STEPS, FLAGS = ReasoningStep.__table__, SafetyFlag.__table__

SESSION_FIELDS = ("id", "user", "prompt", "status", "planner", "answer", "error", "created_at",
                  "finished_at", "plan_ms", "latency_ms", "hold_id", "quoted", "charged",
                  "charge_split")  # fmt: skip
TASK_RESULT_FIELDS = ("instruction", "status", "assigned_model", "result", "error", "tokens_in",
                      "tokens_out", "latency_ms", "ranking", "cost")  # fmt: skip
TASK_FIELDS = ("session_id", "key", "position", "parent_key", "depends_on", "capability", *TASK_RESULT_FIELDS)
STEP_FIELDS = ("session_id", "seq", "role", "task_key", "model_id", "input", "output", "latency_ms")
FLAG_FIELDS = ("session_id", "category", "severity", "detail")


SESSION_RESULT_FIELDS = ("status", "answer", "error", "latency_ms", "finished_at", "charged", "charge_split")
CARDS = ModelCardRow.__table__
_latency = bindparam("b_latency")

# Every statement the write path runs, in the order a batch runs them. Card counters and the
# latency average are computed in SQL, not read-modify-write, so concurrent replicas never lose
# each other's counts.
STATEMENTS = {
    "session": SESSIONS.insert(),
    "task": TASKS.insert(),
    "flag": FLAGS.insert(),
    "step": STEPS.insert(),
    "task_result": TASKS.update()
    .where(TASKS.c.session_id == bindparam("b_session_id"), TASKS.c.key == bindparam("b_key"))
    .values({f: bindparam(f) for f in TASK_RESULT_FIELDS}),
    "session_result": SESSIONS.update()
    .where(SESSIONS.c.id == bindparam("b_id"))
    .values({f: bindparam(f) for f in SESSION_RESULT_FIELDS}),
    "model_ok": CARDS.update()
    .where(CARDS.c.id == bindparam("b_id"))
    .values(
        calls=CARDS.c.calls + 1,
        consecutive_failures=0,
        latency_ms=case(
            (CARDS.c.latency_ms.is_(None), _latency),
            else_=(1 - LATENCY_EWMA_WEIGHT) * CARDS.c.latency_ms + LATENCY_EWMA_WEIGHT * _latency,
        ),
    ),
    "model_failed": CARDS.update()
    .where(CARDS.c.id == bindparam("b_id"))
    .values(
        calls=CARDS.c.calls + 1,
        failures=CARDS.c.failures + 1,
        consecutive_failures=CARDS.c.consecutive_failures + 1,
    ),
}


def _columns(row, fields: tuple[str, ...]) -> dict:
    return {f: getattr(row, f) for f in fields}


class SessionRecord:
    """One session as rows (dicts keyed by column): what is written, and what the API shows.

    The orchestrator keeps it in memory while the query runs and answers from it; GET
    /v1/sessions/{id} rebuilds it from the database. Both paths go through `view`, so a query's
    response and its stored trace are the same document.
    """

    def __init__(self, session: dict, tasks: list[dict], steps: list[dict], flags: list[dict]):
        self.session, self.tasks, self.steps, self.flags = session, tasks, steps, flags

    @classmethod
    def new(
        cls, session_id: str, user: str, prompt: str, plan: TaskPlan, plan_ms: float, flags: list[Flag],
        steps: list[Step], status: str = "running", hold_id: str | None = None, quoted: int | None = None,
    ) -> SessionRecord:  # fmt: skip
        session = {
            "id": session_id, "user": user, "prompt": prompt, "status": status, "planner": plan.planner,
            "answer": None, "error": None, "created_at": utcnow(), "finished_at": None, "plan_ms": plan_ms,
            "latency_ms": None, "hold_id": hold_id, "quoted": quoted, "charged": None, "charge_split": None,
        }  # fmt: skip
        tasks = [
            {
                "session_id": session_id,
                "key": t.key,
                "position": i,
                "parent_key": t.parent,
                "depends_on": list(t.depends_on),
                "capability": t.capability,
                "instruction": t.instruction,
                "status": "pending",
                "assigned_model": None,
                "result": None,
                "error": None,
                "tokens_in": 0,
                "tokens_out": 0,
                "latency_ms": None,
                "ranking": [],
                "cost": 0,
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
        rows = [{"session_id": self.session["id"], **step.row()} for step in steps]
        self.steps.extend(rows)
        return rows

    def finish_task(self, outcome: TaskOutcome, cost: int = 0) -> dict:
        task = next(t for t in self.tasks if t["key"] == outcome.task.key)
        task.update(
            instruction=outcome.instruction,
            status=outcome.status,
            assigned_model=outcome.model_id,
            result=outcome.result,
            error=outcome.error,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            latency_ms=outcome.latency_ms,
            ranking=outcome.ranking,
            cost=cost,
        )
        return task

    def view(self, cards: dict[str, ModelCard]) -> dict:
        s = self.session
        tasks = sorted(self.tasks, key=lambda t: t["position"])
        assignments = [(t["key"], t["assigned_model"]) for t in tasks if t["assigned_model"]]
        return {
            "session_id": s["id"],
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
                    "depends_on": list(t["depends_on"]),
                    "parent": t["parent_key"],
                    "status": t["status"],
                    "model": t["assigned_model"],
                    "result": t["result"],
                    "error": t["error"],
                    "latency_ms": t["latency_ms"],
                    "tokens_in": t["tokens_in"],
                    "tokens_out": t["tokens_out"],
                    "ranking": t["ranking"],
                    "cost": str(t["cost"]),
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
        }


def release_abandoned(ledger: Ledger, older_than_s: float) -> list[str]:
    """Sessions still `running` after `older_than_s` (their NWTN process died mid-query): end
    them `failed` and release their holds, in one transaction. Uses the key the orchestrator
    would have used, so a release cannot happen twice. Returns the session ids."""
    from datetime import timedelta

    from prsm.ftns.ledger import HoldClosed, release_op

    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with ledger.engine.begin() as conn:
        rows = conn.execute(
            select(SESSIONS.c.id, SESSIONS.c.hold_id)
            .where(SESSIONS.c.status == "running", SESSIONS.c.created_at < cutoff)
            .order_by(SESSIONS.c.created_at)
        ).all()
        ops = [
            release_op(r.hold_id, f"query:{r.id}:release", f"query {r.id} abandoned")
            for r in rows
            if r.hold_id
        ]
        for result in ledger.post_many(ops, conn) if ops else []:
            if isinstance(result, Exception) and not isinstance(result, HoldClosed):
                raise result
        if rows:
            conn.execute(
                SESSIONS.update()
                .where(SESSIONS.c.id.in_([r.id for r in rows]))
                .values(status="failed", error="abandoned: the orchestrator stopped mid-query", charged=0,
                        finished_at=utcnow())
            )  # fmt: skip
    return [r.id for r in rows]
