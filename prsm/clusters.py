"""Clusters of similar sub-tasks: made from traffic (prsm/stats.py clusters what language models
answered; `prsm loop clusters` saves them), used by the router to place each new sub-task in one
(its quality is then kept per cluster too: prsm/quality.py) and by the loop to choose what to
distil.

A cluster is a centroid in one embedding model's space (the router's: all-MiniLM-L6-v2) with
the capability of its sub-tasks. A sub-task joins the cluster of its capability whose centroid is
most similar, at cosine >= THRESHOLD; otherwise it has none (""). Saving clusters again keeps
the id of an existing cluster that a new one matches (cosine >= SAME), so the grades kept under
an id stay with it as traffic drifts; clusters are never deleted by a save.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from prsm.db.engine import Database
from prsm.db.models import TaskClusterRow, utcnow

CLUSTERS = TaskClusterRow.__table__
THRESHOLD = 0.8  # a sub-task joins a cluster at this cosine similarity to its centroid
SAME = 0.9  # a new cluster this similar to a saved one is that one


@dataclass(frozen=True)
class TaskCluster:
    id: str
    capability: str
    embedding_key: str
    centroid: np.ndarray
    size: int
    example: str

    @staticmethod
    def new_id(example: str) -> str:
        return "c" + hashlib.sha256(example.encode()).hexdigest()[:10]


def load(db: Database, embedding_key: str) -> list[TaskCluster]:
    """The saved clusters made with `embedding_key`'s embeddings."""
    with db.engine.connect() as conn:
        return load_in(conn, embedding_key)


def save(db: Database, found: list[TaskCluster]) -> list[TaskCluster]:
    """Save `found`, each under the id of a saved cluster it matches (its centroid and size
    updated) or its own; returns them as saved."""
    saved: list[TaskCluster] = []
    with db.writer.begin() as conn:
        for cluster in found:
            existing = [c for c in load_in(conn, cluster.embedding_key) if c.capability == cluster.capability]
            match = max(existing, key=lambda c: float(np.dot(c.centroid, cluster.centroid)), default=None)
            centroid = cluster.centroid.astype(np.float32).tobytes()
            if match is not None and float(np.dot(match.centroid, cluster.centroid)) >= SAME:
                conn.execute(
                    CLUSTERS.update()
                    .where(CLUSTERS.c.id == match.id)
                    .values(centroid=centroid, size=cluster.size, example=cluster.example)
                )
                saved.append(TaskCluster(match.id, *_fields(cluster)))
            else:
                conn.execute(CLUSTERS.insert().values(id=cluster.id, capability=cluster.capability,
                                                      embedding_key=cluster.embedding_key, centroid=centroid,
                                                      size=cluster.size, example=cluster.example,
                                                      created_at=utcnow()))  # fmt: skip
                saved.append(cluster)
    return saved


def load_in(conn, embedding_key: str) -> list[TaskCluster]:
    rows = conn.execute(
        select(CLUSTERS).where(CLUSTERS.c.embedding_key == embedding_key).order_by(CLUSTERS.c.id)
    ).all()
    return [
        TaskCluster(
            r.id,
            r.capability,
            r.embedding_key,
            np.frombuffer(r.centroid, dtype=np.float32),
            r.size,
            r.example,
        )  # fmt: skip
        for r in rows
    ]


def _fields(cluster: TaskCluster) -> tuple:
    return (cluster.capability, cluster.embedding_key, cluster.centroid, cluster.size, cluster.example)


class Placer:
    """Places sub-tasks in saved clusters: one matrix product a batch."""

    def __init__(self, clusters: list[TaskCluster], threshold: float = THRESHOLD):
        self.threshold = threshold
        self._by_capability: dict[str, tuple[list[str], np.ndarray]] = {}
        for capability in {c.capability for c in clusters}:
            mine = [c for c in clusters if c.capability == capability]
            self._by_capability[capability] = ([c.id for c in mine], np.stack([c.centroid for c in mine]))

    def place(self, capability: str, vector: np.ndarray) -> str:
        found = self._by_capability.get(str(capability))
        if found is None:
            return ""
        ids, centroids = found
        sims = centroids @ vector
        best = int(np.argmax(sims))
        return ids[best] if sims[best] >= self.threshold else ""
