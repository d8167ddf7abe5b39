"""Query sessions in the database: what NWTN writes while a query runs, and the trace it reads back.

A session row is written only once its plan is valid, together with its tasks, in one
transaction: a rejected prompt or plan leaves nothing behind. Each finished sub-task is then
written as it finishes, so a crash mid-query still leaves every finished step readable.
All writes go through the process's group committer (prsm/db/committer.py). The ledger
operation that pays for a query rides in these writes (prsm/ftns/billing.py makes it): its hold
with the session's first write, its capture or release with the last, so a refused hold leaves
nothing behind and charging costs no commit of its own.
"""

from __future__ import annotations

from sqlalchemy import bindparam, case, select
from sqlalchemy.exc import IntegrityError

from prsm import canary, quality
from prsm.db.committer import OPS, GroupCommitter, Write
from prsm.db.engine import Database
from prsm.db.models import (
    Feedback,
    ModelCardRow,
    PlanTask,
    QuerySession,
    ReasoningStep,
    SafetyFlag,
    iso_utc,
    utcnow,
)
from prsm.errors import InvalidInput, SessionNotFound, SessionRunning
from prsm.ftns.ledger import Ledger, Op
from prsm.nwtn import cache
from prsm.nwtn.execute import TaskOutcome
from prsm.nwtn.trace import (
    FLAG_FIELDS,
    SESSION_FIELDS,
    SESSION_RESULT_FIELDS,
    STEP_FIELDS,
    TASK_FIELDS,
    TASK_RESULT_FIELDS,
    SessionRecord,
    Step,
)
from prsm.registry import LATENCY_EWMA_WEIGHT, card_from_row
from prsm.types import SessionStatus, TaskStatus

# Core tables: the write path skips the ORM's unit of work (it costs more than the SQL here).
SESSIONS, TASKS = QuerySession.__table__, PlanTask.__table__
STEPS, FLAGS, CARDS = ReasoningStep.__table__, SafetyFlag.__table__, ModelCardRow.__table__
FEEDBACK = Feedback.__table__
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
        latency_ms=case(
            (CARDS.c.latency_ms.is_(None), _latency),
            else_=(1 - LATENCY_EWMA_WEIGHT) * CARDS.c.latency_ms + LATENCY_EWMA_WEIGHT * _latency,
        ),
    ),
    "model_failed": CARDS.update()
    .where(CARDS.c.id == bindparam("b_id"))
    .values(calls=CARDS.c.calls + 1, failures=CARDS.c.failures + 1),
}


def card_order(params: dict) -> tuple:
    return (params["b_id"],)


class SessionStore:
    def __init__(self, db: Database, ledger: Ledger):
        self._db = db
        # Grades (prsm/quality.py) ride in the same writes: a tool's with its sub-task's result.
        statements = STATEMENTS | {
            "grade": quality.GRADES.insert(),
            "quality": quality.add_statement(db.engine.dialect.name),
            "canary_grade": canary.GRADE,
            "cache_put": cache.put_statement(db.engine.dialect.name),
        }
        # Rows many replicas update (a card's counters, its quality totals) are locked in one order.
        order = {
            "model_ok": card_order,
            "model_failed": card_order,
            "quality": quality.lock_order,
        }
        self._committer = GroupCommitter(db.writer, statements, ledger.post_many, lock_order=order)

    async def start(self, record: SessionRecord, hold: Op | None = None) -> None:
        """Write the session, its plan and first steps, with the query's hold if it has one."""
        write: Write = [(OPS, hold)] if hold else []
        write.append(("session", dict(record.session)))
        write += [("task", dict(t)) for t in record.tasks]
        write += [("flag", dict(f)) for f in record.flags]
        write += [("step", dict(st)) for st in record.steps]
        await self._committer.submit(write)

    def task_write(
        self, record: SessionRecord, outcome: TaskOutcome, steps: list[Step], cost: int,
        grades: list[quality.Grade] = (),
    ) -> Write:  # fmt: skip
        """What a finished sub-task writes: its result, its steps, the models' counters, its grades."""
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
            # the input's fault, never called, turned away by load, or answered from the cache:
            # the model's record stays
            if not (a.refused or a.skipped or a.busy or a.cached)
        ]
        return write + quality.writes(list(grades))

    async def commit(self, write: Write) -> None:
        await self._committer.submit(write)

    async def finish(
        self, record: SessionRecord, steps: list[Step], charge: Op | None, tasks: Write = ()
    ) -> None:
        """Write the outcome `record.finish` recorded, with the query's capture or release, and
        the writes of sub-tasks that finished last (`task_write`): one transaction for all."""
        result = {"b_id": record.id} | {k: record.session[k] for k in SESSION_RESULT_FIELDS}
        write: Write = [(OPS, charge)] if charge else []
        write += tasks
        write.append(("session_result", result))
        write += [("step", row) for row in record.add_steps(steps)]
        await self._committer.submit(write)

    def trace(self, session_id: str) -> dict:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
            if row is None:
                raise SessionNotFound(f"no session {session_id!r}", "session_id")
            tasks = conn.execute(select(TASKS).where(TASKS.c.session_id == session_id)).all()
            steps = conn.execute(select(STEPS).where(STEPS.c.session_id == session_id)).all()
            flags = conn.execute(
                select(FLAGS).where(FLAGS.c.session_id == session_id).order_by(FLAGS.c.id)
            ).all()
        with self._db.orm() as s:
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
        return record.view(cards) | {"feedback": self.feedback(session_id)}

    def account_of(self, session_id: str) -> str:
        with self._db.engine.connect() as conn:
            account = conn.execute(select(SESSIONS.c.account).where(SESSIONS.c.id == session_id)).scalar()
        if account is None:
            raise SessionNotFound(f"no session {session_id!r}", "session_id")
        return account

    def feedback(self, session_id: str) -> list[dict]:
        """The session's ratings: of the answer (`task` null) and of single sub-tasks."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(FEEDBACK).where(FEEDBACK.c.session_id == session_id).order_by(FEEDBACK.c.task_key)
            ).all()
        return [_feedback_view(r) for r in rows]

    def rate(self, session_id: str, task: str | None, score: float, comment: str | None) -> tuple[dict, bool]:
        """Record the session's account's rating of its answer (`task` None) or of one sub-task:
        one rating per target, a new one replaces it, the same one again changes nothing.
        Returns (the rating, whether anything changed). The caller checks who may rate."""
        key = task or ""
        with self._db.writer.begin() as conn:
            session = conn.execute(select(SESSIONS.c.status).where(SESSIONS.c.id == session_id)).first()
            if session is None:
                raise SessionNotFound(f"no session {session_id!r}", "session_id")
            if session.status == SessionStatus.RUNNING:
                raise SessionRunning(
                    f"session {session_id} is still running: rate it once it has finished", "session_id"
                )
            rated = None
            if key:
                rated = conn.execute(
                    select(TASKS.c.assigned_model, TASKS.c.capability, TASKS.c.cluster, TASKS.c.status).where(
                        TASKS.c.session_id == session_id, TASKS.c.key == key
                    )
                ).first()
                if rated is None:
                    raise InvalidInput(f"session {session_id} has no sub-task {key!r}", "task")
            where = (FEEDBACK.c.session_id == session_id, FEEDBACK.c.task_key == key)
            current = conn.execute(select(FEEDBACK).where(*where)).first()
            if current is not None and (current.score, current.comment) == (score, comment):
                return _feedback_view(current), False
            now = utcnow()
            if current is None:
                try:
                    with conn.begin_nested():
                        conn.execute(FEEDBACK.insert().values(session_id=session_id, task_key=key, score=score,
                                                              comment=comment, created_at=now, updated_at=now))  # fmt: skip
                except IntegrityError:  # the same target rated at the same moment elsewhere
                    conn.execute(
                        FEEDBACK.update().where(*where).values(score=score, comment=comment, updated_at=now)
                    )
            else:
                conn.execute(
                    FEEDBACK.update().where(*where).values(score=score, comment=comment, updated_at=now)
                )
            if rated is not None and rated.assigned_model and rated.status == TaskStatus.DONE:
                # A rating of a sub-task is a grade of the model that answered it (prsm/quality.py).
                grade = quality.Grade(
                    rated.assigned_model,
                    rated.capability,
                    score,
                    "feedback",
                    session_id,
                    key,
                    rated.cluster or "",
                )
                quality.replace_rating(conn, grade)
            row = conn.execute(select(FEEDBACK).where(*where)).one()
        return _feedback_view(row), True


def _feedback_view(row) -> dict:
    return {"session_id": row.session_id, "task": row.task_key or None, "score": row.score, "comment": row.comment,
            "created_at": iso_utc(row.created_at), "updated_at": iso_utc(row.updated_at)}  # fmt: skip


def _columns(row, fields: tuple[str, ...]) -> dict:
    return {f: getattr(row, f) for f in fields}
