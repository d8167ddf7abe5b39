"""Quality: how well each model answers each kind of sub-task, measured, never declared.

A grade is a score in [0, 1] for one model's answer to one sub-task. Graders make them
(prsm/nwtn/grade.py: an exact tool scores by its success; a language model's answer by its
agreement with a reference model's, graded in shadow on a sampled share of traffic) and so do
users (POST /v1/sessions/{id}/feedback on a sub-task). Each grade is kept (table `grades`: who
graded what, when; `prsm stats` reads them) and added to its model's running totals per
capability and cluster of similar sub-tasks (table `model_quality`: a count and a sum, added to
in SQL, so concurrent replicas never lose each other's grades; cluster "" is the capability as
a whole).

The estimate is the posterior of a Beta(1, 1) prior updated with the grades as fractional
successes: mean (1 + sum) / (2 + n), 0.5 with no grades, and its standard deviation, the
uncertainty the card shows and the router's exploration uses (prsm/nwtn/route.py). A cluster's
estimate starts instead from its capability's mean, worth CLUSTER_PRIOR_WEIGHT grades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from prsm.db.models import GradeRow, ModelQuality, utcnow

GRADES, QUALITY = GradeRow.__table__, ModelQuality.__table__


@dataclass(frozen=True)
class Estimate:
    n: float = 0.0  # grades counted
    total: float = 0.0  # their sum
    # The prior: a Beta with this mean and weight (pseudo-grades); Beta(1, 1) by default.
    prior_mean: float = 0.5
    prior_weight: float = 2.0

    @property
    def mean(self) -> float:
        return (self.prior_weight * self.prior_mean + self.total) / (self.prior_weight + self.n)

    @property
    def std(self) -> float:
        a = self.prior_weight * self.prior_mean + self.total
        b = self.prior_weight * (1.0 - self.prior_mean) + self.n - self.total
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))

    def to_dict(self) -> dict:
        return {"mean": round(self.mean, 4), "std": round(self.std, 4), "n": int(round(self.n))}


UNMEASURED = Estimate()
# A cluster's estimate starts from its capability's, worth this many grades: a cluster with few
# grades is judged mostly by the capability, one with many by its own.
CLUSTER_PRIOR_WEIGHT = 5.0


def estimate_for(found: dict[tuple[str, str], Estimate], capability: str, cluster: str = "") -> Estimate:
    """A model's estimate for a sub-task: its cluster's, shrunk towards its capability's."""
    whole = found.get((capability, ""), UNMEASURED)
    if not cluster:
        return whole
    own = found.get((capability, cluster), UNMEASURED)
    return Estimate(own.n, own.total, whole.mean, CLUSTER_PRIOR_WEIGHT)


@dataclass(frozen=True)
class Grade:
    model_id: str
    capability: str
    score: float
    grader: str  # tool | reference:<model id> | feedback
    session_id: str | None = None
    task_key: str | None = None
    cluster: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0 or math.isnan(self.score):
            raise ValueError(f"a grade is in [0, 1], got {self.score!r}")

    def row(self) -> dict:
        return {"session_id": self.session_id, "task_key": self.task_key, "model_id": self.model_id,
                "capability": self.capability, "cluster": self.cluster, "grader": self.grader,
                "score": self.score, "created_at": utcnow()}  # fmt: skip


def add_statement(dialect: str):
    """INSERT ... ON CONFLICT DO UPDATE adding (b_n, b_total) to a model's totals, for executemany
    (SQLite and PostgreSQL spell it alike; SQLAlchemy needs the dialect's own insert)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    stmt = insert(QUALITY).values(
        model_id=bindparam("b_model"), capability=bindparam("b_capability"), cluster=bindparam("b_cluster"),
        n=bindparam("b_n"), total=bindparam("b_total"), updated_at=bindparam("b_at"),
    )  # fmt: skip
    return stmt.on_conflict_do_update(
        index_elements=[QUALITY.c.model_id, QUALITY.c.capability, QUALITY.c.cluster],
        set_={"n": QUALITY.c.n + stmt.excluded.n, "total": QUALITY.c.total + stmt.excluded.total,
              "updated_at": stmt.excluded.updated_at},
    )  # fmt: skip


def additions(grade: Grade, n: float = 1.0, total: float | None = None) -> list[dict]:
    """The totals a grade adds to: its capability's, and its cluster's when it has one."""
    total = grade.score if total is None else total
    clusters = ("", grade.cluster) if grade.cluster else ("",)
    at = utcnow()
    return [{"b_model": grade.model_id, "b_capability": grade.capability, "b_cluster": c, "b_n": n,
             "b_total": total, "b_at": at} for c in clusters]  # fmt: skip


def lock_order(addition: dict) -> tuple:
    """The order totals are updated in, in every transaction: two never wait on each other."""
    return (addition["b_model"], addition["b_capability"], addition["b_cluster"])


def writes(grades: list[Grade]) -> list[tuple[str, dict]]:
    """The group committer's writes for `grades` (statements "grade" and "quality")."""
    out: list[tuple[str, dict]] = [("grade", g.row()) for g in grades]
    out += [("quality", a) for g in grades for a in additions(g)]
    return out


def record(conn: Connection, grades: list[Grade]) -> None:
    """Write `grades` and add them to the totals, in the caller's transaction."""
    if not grades:
        return
    conn.execute(GRADES.insert(), [g.row() for g in grades])
    rows = sorted((a for g in grades for a in additions(g)), key=lock_order)  # no deadlock (PostgreSQL)
    conn.execute(add_statement(conn.dialect.name), rows)


def replace_rating(conn: Connection, grade: Grade) -> None:
    """A user's rating of a sub-task (grader "feedback"): a new one replaces the old in the
    totals (counted once), in the caller's transaction."""
    where = (GRADES.c.session_id == grade.session_id, GRADES.c.task_key == grade.task_key,
             GRADES.c.grader == grade.grader)  # fmt: skip
    old = conn.execute(select(GRADES.c.id, GRADES.c.score).where(*where)).first()
    if old is None:
        record(conn, [grade])
        return
    conn.execute(GRADES.update().where(GRADES.c.id == old.id).values(score=grade.score, created_at=utcnow()))
    conn.execute(add_statement(conn.dialect.name), additions(grade, 0.0, grade.score - old.score))


def estimates(
    conn: Connection, model_ids: list[str] | None = None
) -> dict[str, dict[tuple[str, str], Estimate]]:
    """Each model's estimates by (capability, cluster)."""
    query = select(QUALITY)
    if model_ids is not None:
        query = query.where(QUALITY.c.model_id.in_(model_ids))
    out: dict[str, dict[tuple[str, str], Estimate]] = {}
    for row in conn.execute(query):
        out.setdefault(row.model_id, {})[(row.capability, row.cluster)] = Estimate(row.n, row.total)
    return out


def by_capability(found: dict[tuple[str, str], Estimate]) -> dict[str, dict]:
    """A card's view: each capability's estimate (cluster-level ones are in `prsm stats`)."""
    return {cap: est.to_dict() for (cap, cluster), est in sorted(found.items()) if not cluster}


def forget(conn: Connection, model_id: str) -> None:
    """A model's totals start again (its card was deleted, or what runs behind it changed):
    grades of other weights say nothing of these. The grades themselves stay, as history."""
    conn.execute(delete(QUALITY).where(QUALITY.c.model_id == model_id))
