"""Canaries: a student takes a cluster's traffic in steps, only while its quality holds.

A canary pairs a student with one cluster of similar sub-tasks (prsm/clusters.py) and the model
that served that cluster until now (the incumbent). While it runs, the router sends the student
a share of the cluster's sub-tasks (PRSM_CANARY_STEPS: 5 %, then 25 %, then 50 %) and keeps it
off the rest;
every answer the student gives there is graded in shadow against the incumbent's answer to the
same sub-task (prsm/nwtn/grade.py; the operator pays), and the grade is added to the canary's
count, sum and sum of squares in SQL. A scheduled job (prsm/ops.py, every PRSM_CANARY_EVERY_S)
then tests the mean grade against the bar PRSM_CANARY_TARGET x baseline: the target is the share
of the incumbent's quality the student must hold (0.95); the baseline is the incumbent's quality
on this scale. A grade is agreement with the incumbent's answer to the same sub-task, and the
incumbent's answer to a sub-task agrees with itself exactly, but that is not what an equally good
model would score: asked the cluster's other sub-tasks (rewordings of one kind of question), the
incumbent's own answers agree with each other far less (`teacher_consistency` 0.774 on the loop
benchmark's hottest cluster, benchmarks/results/loop.json). So the loop
measures that agreement on the cluster's logged answers (prsm/loop.py: `consistency`) and starts
the canary with it as the baseline; a canary started by hand has baseline 1 (absolute agreement).
What this lets through: a student that answers a sub-task as the incumbent answered another
wording of the same cluster (an answer the incumbent itself gives to that kind of question); what
it stops: answers the incumbent would not give. A cluster whose answers do not agree (different
questions) is refused by the loop (MIN_CONSISTENCY), so the bar never sinks to meaning nothing.

- a one-sided z-test on the mean (its standard error from the grades' own variance, floored):
  z = (mean - bar) / se. With at least PRSM_CANARY_STEP_GRADES (10) new grades in the step and
  z >= Z, the canary goes one step up, and past the last step it is promoted: the student takes
  the cluster's traffic (the incumbent stays behind it as the fallback).
- with at least MIN_GRADES grades and z <= -Z it is rolled back: the student's card is disabled.

Every decision is appended to the canary's `decisions` with the figures it was made on; an
operator may pin a student (promote it by hand) or roll it back by hand (`prsm loop pin|rollback`).
The test is checked repeatedly, so its error rate is approximate; the steps bound what a bad
student can cost before it is caught (at most the current step's share of one cluster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from prsm.db.engine import Database
from prsm.db.models import CanaryRow, TaskClusterRow, utcnow
from prsm.errors import InvalidInput, UnknownModel
from prsm.registry import Registry

CANARIES = CanaryRow.__table__
STEPS = (0.05, 0.25, 0.5)
Z = 1.645  # one-sided 95 %
MIN_STEP_GRADES = 10
MIN_GRADES = 5
VARIANCE_FLOOR = 1e-4  # grades that never vary still leave this much doubt (sd 0.01)
ACTIVE = ("canary", "promoted")

# The committer's statement (prsm/nwtn/sessions.py): one canary grade, added in SQL.
GRADE = (
    CANARIES.update()
    .where(
        CANARIES.c.student == bindparam("b_student"),
        CANARIES.c.cluster == bindparam("b_cluster"),
        CANARIES.c.status == "canary",
    )
    .values(
        n=CANARIES.c.n + 1,
        total=CANARIES.c.total + bindparam("b_score"),
        total_sq=CANARIES.c.total_sq + bindparam("b_score_sq"),
    )
)


def grade_write(student: str, cluster: str, score: float) -> tuple[str, dict]:
    return (
        "canary_grade",
        {"b_student": student, "b_cluster": cluster, "b_score": score, "b_score_sq": score**2},
    )


@dataclass(frozen=True)
class Canary:
    student: str
    cluster: str
    capability: str
    incumbent: str
    status: str
    share: float


def active(db: Database) -> dict[str, list[Canary]]:
    """Canaries running or promoted, by cluster: what the router applies."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(CANARIES).where(CANARIES.c.status.in_(ACTIVE)).order_by(CANARIES.c.id)
        ).all()
    out: dict[str, list[Canary]] = {}
    for r in rows:
        out.setdefault(r.cluster, []).append(
            Canary(r.student, r.cluster, r.capability, r.incumbent, r.status, r.share)
        )
    return out


def start(
    db: Database,
    registry: Registry,
    student: str,
    cluster: str,
    incumbent: str,
    steps: tuple[float, ...] = STEPS,
    baseline: float = 1.0,
) -> dict:
    """Put `student` on `cluster`'s traffic at the first of `steps`, graded against `incumbent`,
    its grades tested against the target x `baseline` (the incumbent's own agreement)."""
    if not 0.0 < baseline <= 1.0:
        raise InvalidInput(f"the baseline is an agreement in (0, 1], not {baseline}", "baseline")
    for field, model in (("student", student), ("incumbent", incumbent)):
        try:
            registry.get(model)
        except UnknownModel:
            raise UnknownModel(f"no model with id {model!r} is registered", field) from None
    if student == incumbent:
        raise InvalidInput("a student cannot be its own incumbent", "incumbent")
    with db.writer.begin() as conn:
        found = conn.execute(select(TaskClusterRow.capability).where(TaskClusterRow.id == cluster)).first()
        if found is None:
            raise InvalidInput(f"no saved cluster {cluster!r} (prsm loop clusters saves them)", "cluster")
        if conn.execute(select(CANARIES.c.id).where(CANARIES.c.student == student,
                                                    CANARIES.c.cluster == cluster)).first():  # fmt: skip
            raise InvalidInput(f"{student} already has a canary on cluster {cluster}", "student")
        now = utcnow()
        decision = {
            "at": now.isoformat(),
            "action": "start",
            "share": steps[0],
            "reason": f"graded against {incumbent}",
            "baseline": round(baseline, 4),
        }
        conn.execute(CANARIES.insert().values(
            student=student, cluster=cluster, capability=found.capability, incumbent=incumbent, status="canary",
            step=0, share=steps[0], baseline=baseline, n=0.0, total=0.0, total_sq=0.0, step_n=0.0, decisions=[decision],
            created_at=now, updated_at=now,
        ))  # fmt: skip
    return status(db, student)[0]


def test(n: float, total: float, total_sq: float, target: float) -> tuple[float, float]:
    """(mean grade, z of the mean against `target`)."""
    if n < 2:
        return (total / n if n else 0.0), 0.0
    mean = total / n
    variance = max((total_sq - n * mean * mean) / (n - 1), VARIANCE_FLOOR)
    return mean, (mean - target) / math.sqrt(variance / n)


def decide(
    db: Database, registry: Registry, target: float, steps: tuple[float, ...] = STEPS,
    min_step_grades: int = MIN_STEP_GRADES,
) -> list[dict]:  # fmt: skip
    """Step up, promote or roll back every running canary its grades decide; the decisions."""
    made = []
    with db.writer.begin() as conn:
        rows = conn.execute(
            select(CANARIES).where(CANARIES.c.status == "canary").order_by(CANARIES.c.id)
        ).all()
        for r in rows:
            bar = target * r.baseline
            mean, z = test(r.n, r.total, r.total_sq, bar)
            figures = {"n": int(r.n), "mean": round(mean, 4), "z": round(z, 2), "target": target,
                       "baseline": r.baseline, "bar": round(bar, 4)}  # fmt: skip
            if r.n >= MIN_GRADES and z <= -Z:
                change = {"status": "rolled_back", "share": 0.0}
                decision = {"action": "roll back", "reason": f"mean grade {mean:.3f} is below {bar:.3f}"}
            elif r.n - r.step_n >= min_step_grades and z >= Z:
                if r.step + 1 < len(steps):
                    change = {"step": r.step + 1, "share": steps[r.step + 1], "step_n": r.n}
                    decision = {"action": "step", "reason": f"mean grade {mean:.3f} holds {bar:.3f}"}
                else:
                    change = {"status": "promoted", "share": 1.0}
                    decision = {
                        "action": "promote",
                        "reason": f"mean grade {mean:.3f} holds {bar:.3f} at every step",
                    }
            else:
                continue
            decision = {"at": utcnow().isoformat(), **decision, "share": change["share"], **figures}
            _apply(conn, r, change, decision)
            made.append({"student": r.student, "cluster": r.cluster, **decision})
    for d in made:
        if d["action"] == "roll back":
            registry.set_disabled(d["student"], True)
    return made


def pin(db: Database, student: str, cluster: str | None = None) -> list[dict]:
    """An operator promotes `student` by hand (on every cluster it has a canary on, or one)."""
    return _by_hand(db, student, cluster, {"status": "promoted", "share": 1.0}, "pin")


def rollback(db: Database, registry: Registry, student: str, cluster: str | None = None) -> list[dict]:
    """An operator rolls `student` back by hand: off the canary's traffic, its card disabled."""
    done = _by_hand(db, student, cluster, {"status": "rolled_back", "share": 0.0}, "roll back")
    registry.set_disabled(student, True)
    return done


def _by_hand(db: Database, student: str, cluster: str | None, change: dict, action: str) -> list[dict]:
    with db.writer.begin() as conn:
        query = select(CANARIES).where(CANARIES.c.student == student)
        if cluster is not None:
            query = query.where(CANARIES.c.cluster == cluster)
        rows = conn.execute(query).all()
        if not rows:
            raise InvalidInput(
                f"{student} has no canary{'' if cluster is None else f' on {cluster}'}", "student"
            )
        for r in rows:
            mean, _ = test(r.n, r.total, r.total_sq, 0.0)
            decision = {"at": utcnow().isoformat(), "action": action, "reason": "by the operator",
                        "share": change["share"], "n": int(r.n), "mean": round(mean, 4)}  # fmt: skip
            _apply(conn, r, change, decision)
    return status(db, student)


def _apply(conn, row, change: dict, decision: dict) -> None:
    conn.execute(
        CANARIES.update()
        .where(CANARIES.c.id == row.id)
        .values(**change, decisions=[*row.decisions, decision], updated_at=utcnow())
    )


def status(db: Database, student: str | None = None) -> list[dict]:
    with db.engine.connect() as conn:
        query = select(CANARIES).order_by(CANARIES.c.id)
        if student is not None:
            query = query.where(CANARIES.c.student == student)
        rows = conn.execute(query).all()
    views = []
    for r in rows:
        mean, _ = test(r.n, r.total, r.total_sq, 0.0)
        views.append({"student": r.student, "cluster": r.cluster, "capability": r.capability,
                      "incumbent": r.incumbent, "status": r.status, "step": r.step, "share": r.share,
                      "baseline": r.baseline,
                      "grades": int(r.n), "mean_grade": round(mean, 4) if r.n else None,
                      "decisions": r.decisions})  # fmt: skip
    return views
