"""Query sessions in the database: the plan, every reasoning step, safety flags, the outcome.

A session row is written only once its plan is valid, together with its tasks, in one
transaction: a rejected prompt or plan leaves nothing behind. Each finished sub-task is then
written in its own transaction, so a crash mid-query still leaves every finished step readable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from prsm.db.models import ModelCardRow, PlanTask, QuerySession, ReasoningStep, SafetyFlag, utcnow
from prsm.errors import SessionNotFound
from prsm.nwtn.compile import sources
from prsm.nwtn.execute import TaskOutcome
from prsm.nwtn.plan import TaskPlan
from prsm.registry import card_from_row, record_call
from prsm.safety import Flag


@dataclass(frozen=True)
class Step:
    seq: int
    role: str
    input: str
    output: str
    latency_ms: float
    task_key: str | None = None
    model_id: str | None = None

    def row(self, session_id: str) -> ReasoningStep:
        return ReasoningStep(
            session_id=session_id,
            seq=self.seq,
            role=self.role,
            input=self.input,
            output=self.output,
            latency_ms=self.latency_ms,
            task_key=self.task_key,
            model_id=self.model_id,
        )


class SessionStore:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def start(
        self,
        session_id: str,
        user: str,
        prompt: str,
        plan: TaskPlan,
        plan_ms: float,
        flags: list[Flag],
        steps: list[Step],
        status: str = "running",
    ) -> None:
        with self._sessions.begin() as s:
            s.add(
                QuerySession(
                    id=session_id,
                    user=user,
                    prompt=prompt,
                    status=status,
                    planner=plan.planner,
                    plan_ms=plan_ms,
                )
            )
            s.flush()
            s.add_all(
                PlanTask(
                    session_id=session_id,
                    key=t.key,
                    position=i,
                    parent_key=t.parent,
                    depends_on=list(t.depends_on),
                    capability=t.capability,
                    instruction=t.instruction,
                    status="pending",
                    tokens_in=0,
                    tokens_out=0,
                    ranking=[],
                )
                for i, t in enumerate(plan.tasks)
            )
            s.add_all(
                SafetyFlag(session_id=session_id, category=f.category, severity=f.severity, detail=f.detail)
                for f in flags
            )
            s.add_all(step.row(session_id) for step in steps)

    def finish_task(self, session_id: str, outcome: TaskOutcome, steps: list[Step]) -> None:
        with self._sessions.begin() as s:
            s.execute(
                update(PlanTask)
                .where(PlanTask.session_id == session_id, PlanTask.key == outcome.task.key)
                .values(
                    instruction=outcome.instruction,
                    status=outcome.status,
                    assigned_model=outcome.model_id,
                    result=outcome.result,
                    error=outcome.error,
                    tokens_in=outcome.tokens_in,
                    tokens_out=outcome.tokens_out,
                    latency_ms=outcome.latency_ms,
                    ranking=outcome.ranking,
                )
            )
            s.add_all(step.row(session_id) for step in steps)
            for attempt in outcome.attempts:
                record_call(s, attempt.model_id, attempt.latency_ms, attempt.ok)

    def finish(
        self,
        session_id: str,
        status: str,
        answer: str | None,
        error: str | None,
        latency_ms: float,
        steps: list[Step],
    ) -> None:
        with self._sessions.begin() as s:
            s.execute(
                update(QuerySession)
                .where(QuerySession.id == session_id)
                .values(
                    status=status,
                    answer=answer,
                    error=error,
                    latency_ms=latency_ms,
                    finished_at=utcnow(),
                )
            )
            s.add_all(step.row(session_id) for step in steps)

    def trace(self, session_id: str) -> dict:
        with self._sessions() as s:
            row = s.scalars(
                select(QuerySession)
                .where(QuerySession.id == session_id)
                .options(
                    selectinload(QuerySession.tasks),
                    selectinload(QuerySession.steps),
                    selectinload(QuerySession.flags),
                )
            ).one_or_none()
            if row is None:
                raise SessionNotFound(f"no session {session_id!r}", "session_id")
            assignments = [(t.key, t.assigned_model) for t in row.tasks if t.assigned_model]
            ids = {m for _, m in assignments}
            cards = {
                r.id: card_from_row(r)
                for r in s.scalars(select(ModelCardRow).where(ModelCardRow.id.in_(ids)))
            }
            return session_view(row, sources(assignments, cards))


def session_view(row: QuerySession, source_list: list[dict]) -> dict:
    """The one shape of a session, for POST /v1/query, GET /v1/sessions/{id} and the CLI."""
    return {
        "session_id": row.id,
        "user": row.user,
        "prompt": row.prompt,
        "status": row.status,
        "planner": row.planner,
        "answer": row.answer,
        "error": row.error,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "plan_ms": row.plan_ms,
        "latency_ms": row.latency_ms,
        "tasks": [
            {
                "key": t.key,
                "instruction": t.instruction,
                "capability": t.capability,
                "depends_on": t.depends_on,
                "parent": t.parent_key,
                "status": t.status,
                "model": t.assigned_model,
                "result": t.result,
                "error": t.error,
                "latency_ms": t.latency_ms,
                "tokens_in": t.tokens_in,
                "tokens_out": t.tokens_out,
                "ranking": t.ranking,
            }
            for t in row.tasks
        ],
        "steps": [
            {
                "seq": st.seq,
                "role": st.role,
                "task": st.task_key,
                "model": st.model_id,
                "input": st.input,
                "output": st.output,
                "latency_ms": st.latency_ms,
            }
            for st in row.steps
        ],
        "sources": source_list,
        "safety_flags": [
            {"category": f.category, "severity": f.severity, "detail": f.detail} for f in row.flags
        ],
    }
