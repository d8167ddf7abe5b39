"""The learning loop, once: distil what traffic repeats into a student that takes over its
cluster of sub-tasks behind a canary.

    prsm loop run               # on the local Ray (or PRSM_RAY_ADDRESS), with progress
    ray job submit --working-dir . -- python jobs/loop.py

1. Cluster the language-model sub-tasks of the window (prsm/stats.py) and save the clusters of
   at least `min_size` for routing (prsm/clusters.py).
2. Take the costliest cluster that a transformers model served most of (that model is the
   teacher: the student must share its vocabulary) and that has no canary yet.
3. Its training set: the sub-task instructions of that cluster the teacher answered, with the
   teacher's own logged answers (so nothing is generated again), from sessions of accounts
   that allow it (prsm/consent.py); stored by CID as a `dataset` artifact created by the
   operator's account with the teacher's weights as its parent, each record naming its session
   and sub-task (its provenance).
4. Distil a student with the existing pipeline (prsm/distill/: Ray Train, evaluated on the
   held-out part of that same traffic, stored by CID, registered with the teacher as its
   teacher, so the teacher's owner earns a royalty on the student's calls).
5. Start a canary (prsm/canary.py): the student on that cluster, graded against the teacher,
   its grades tested against the target x the teacher's own agreement across the cluster
   (`consistency`: how closely its answers to the cluster's different instructions agree).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from prsm import canary, clusters, consent, stats
from prsm.db.models import PlanTask, QuerySession
from prsm.distill.job import registered
from prsm.errors import InvalidInput
from prsm.nwtn.execute import messages_for
from prsm.services import Services
from prsm.storage.artifacts import ArtifactKind
from prsm.types import ModelKind, SubTask, TaskStatus
from prsm.weights import cid_of_reference

MIN_EXAMPLES = 8  # the fewest sub-tasks a student is distilled from (a fifth of them held out)
# Below this agreement of the teacher's answers across a cluster, the cluster is not one kind of
# sub-task (its instructions ask different things) and is not distilled.
MIN_CONSISTENCY = 0.6
TASKS, SESSIONS = PlanTask.__table__, QuerySession.__table__


@dataclass(frozen=True)
class Choice:
    cluster: str  # the saved cluster's id
    capability: str
    teacher: str
    task_ids: tuple[int, ...]
    volume: int
    cost: int


def save_clusters(
    services: Services, embedder, start: datetime, limit: int = 5000, min_size: int = 5
) -> list[tuple[stats.Cluster, clusters.TaskCluster]]:
    """Cluster the window's language-model sub-tasks and save the clusters of at least
    `min_size` for routing, the costliest first: each with the id it was saved under."""
    con = stats.connect(services.settings)
    found = [c for c in stats.clusters_of(con, embedder, start, limit) if len(c.instructions) >= min_size]
    return list(
        zip(found, clusters.save(services.db, [c.saved_as(embedder.name) for c in found]), strict=True)
    )


def choose(
    services: Services, embedder, start: datetime, limit: int = 5000, min_size: int = 5
) -> Choice | None:
    """Save the window's clusters; the costliest one a transformers model served most of and
    no canary holds, or None."""
    taken = {c["cluster"] for c in canary.status(services.db) if c["status"] in canary.ACTIVE}
    cards = {c.id: c for c in services.registry.list()}
    for c, s in save_clusters(services, embedder, start, limit, min_size):
        teacher = max(sorted(c.models), key=lambda m: c.models[m])
        card = cards.get(teacher)
        if s.id in taken or card is None or card.kind != ModelKind.TRANSFORMERS or card.disabled:
            continue
        return Choice(s.id, c.capability, teacher, tuple(c.task_ids), len(c.instructions), c.cost)
    return None


def system_prompt(capability: str, instruction: str) -> str | None:
    """The system message NWTN sent with this sub-task (prsm/nwtn/execute.py): the teacher
    answered the instruction after it, so the student learns from the same prompt."""
    first = messages_for(SubTask("t1", instruction, capability), instruction)[0]
    return first["content"] if first["role"] == "system" else None


def dataset(services: Services, choice: Choice) -> tuple[str, list[dict], int]:
    """Store the choice's training set; (its CID, its records, sub-tasks left out by their
    account's choice). Refused with fewer than MIN_EXAMPLES records."""
    records, left_out = training_records(services, choice)
    return store_dataset(services, choice, records), records, left_out


def training_records(services: Services, choice: Choice) -> tuple[list[dict], int]:
    """The choice's training records and the count left out by their account's choice; refused
    with fewer than MIN_EXAMPLES records. Nothing is written."""
    with services.db.engine.connect() as conn:
        rows = conn.execute(
            select(TASKS.c.session_id, TASKS.c.key, TASKS.c.instruction, TASKS.c.result, SESSIONS.c.account)
            .join(SESSIONS, SESSIONS.c.id == TASKS.c.session_id)
            .where(TASKS.c.id.in_(choice.task_ids), TASKS.c.assigned_model == choice.teacher,
                   TASKS.c.status == TaskStatus.DONE, TASKS.c.result.is_not(None))
            .order_by(TASKS.c.session_id, TASKS.c.key)
        ).all()  # fmt: skip
    excluded = consent.excluded(
        services.db, {r.account for r in rows}, services.settings.data_sharing_default
    )
    records = [
        {
            "prompt": r.instruction,
            "system": system_prompt(choice.capability, r.instruction),
            "completion": r.result,
            "session_id": r.session_id,
            "task": r.key,
            "model": choice.teacher,
            "cluster": choice.cluster,
        }  # fmt: skip
        for r in rows
        if r.account not in excluded and r.result.strip()
    ]
    left_out = sum(1 for r in rows if r.account in excluded)
    if len(records) < MIN_EXAMPLES:
        raise InvalidInput(
            f"cluster {choice.cluster} has {len(records)} sub-tasks {choice.teacher} answered for accounts that "
            f"share their data ({left_out} left out by their choice); a student needs {MIN_EXAMPLES}",
            "cluster",
        )
    return records, left_out


def store_dataset(services: Services, choice: Choice, records: list[dict]) -> str:
    """Store the records by CID as a `dataset` artifact with its provenance; its CID."""
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    cid = services.store.put(body)
    teacher = services.registry.get(choice.teacher)
    digest = hashlib.sha256(body).hexdigest()[:12]
    services.artifacts.register(
        cid, ArtifactKind.DATASET, services.settings.operator_account,
        parents=registered(services.artifacts, [cid_of_reference(teacher.weights or "")]),
        name=f"loop-{choice.cluster}-{digest}.jsonl",
    )  # fmt: skip
    services.store.pin(cid)
    return cid


def consistency(embedder, records: list[dict], most: int = 64) -> float | None:
    """The teacher's agreement with itself across the cluster: the mean agreement (the graders'
    measure, prsm/nwtn/grade.py) of its answers to each pair of different instructions (at most
    `most` instructions, the first by text). None with fewer than two different instructions."""
    answers = dict(sorted({r["prompt"]: r["completion"] for r in records}.items())[:most])
    if len(answers) < 2:
        return None
    vectors = embedder.embed_many(list(answers.values()))
    pairs = [(a, b) for a in range(len(vectors)) for b in range(a + 1, len(vectors))]
    return sum(min(1.0, max(0.0, float(np.dot(vectors[a], vectors[b])))) for a, b in pairs) / len(pairs)


def run(
    services: Services, embedder, start: datetime, *, limit: int = 5000, min_size: int = 5, steps: int = 300,
    workers: int = 1, cpus_per_worker: float | None = None, say: Callable[[str], None] = print, progress=None,
    **distill: object,
) -> dict:  # fmt: skip
    """One turn of the loop (see the module's docstring); what it did. `distill`: further
    DistillSpec arguments (the student's shape, batch size...)."""
    from prsm.distill.job import placement, prepare, publish, train_with_ray
    from prsm.distill.spec import DistillSpec

    choice = choose(services, embedder, start, limit, min_size)
    if choice is None:
        raise InvalidInput(
            f"no cluster to distil: none of at least {min_size} language-model sub-tasks served by a "
            "transformers model without a canary (prsm stats candidates shows the clusters)",
            "cluster",
        )
    say(f"cluster {choice.cluster} ({choice.capability}): {choice.volume} sub-tasks, mostly {choice.teacher}")
    records, left_out = training_records(services, choice)
    agreement = consistency(embedder, records)
    if agreement is not None and agreement < MIN_CONSISTENCY:
        raise InvalidInput(
            f"{choice.teacher}'s answers across cluster {choice.cluster} agree at {agreement:.2f} (below "
            f"{MIN_CONSISTENCY}): its sub-tasks are not one kind, and a student judged against them would "
            "be held to a bar that means nothing",
            "cluster",
        )
    baseline = 1.0 if agreement is None else agreement
    cid = store_dataset(services, choice, records)
    say(
        f"training set {cid}: {len(records)} sub-tasks with {choice.teacher}'s answers ({left_out} not shared); "
        f"its answers agree with each other at {baseline:.3f}: the canary's baseline"
    )
    spec = DistillSpec(teacher=choice.teacher, data=cid, steps=steps, workers=workers, cpus_per_worker=cpus_per_worker,
                       **{"max_new_tokens": services.settings.max_new_tokens, **distill})  # fmt: skip
    cpus = placement(spec, services.settings)
    plan = prepare(spec, services, say=say)
    result = train_with_ray(plan, progress=progress, cpus=cpus)
    card = publish(plan, services, result, say=say)
    steps = tuple(services.settings.canary_steps)
    started = canary.start(
        services.db, services.registry, card.id, choice.cluster, choice.teacher, steps, baseline
    )
    say(f"{card.id} is a canary on {choice.cluster} at {started['share']:.0%} of its sub-tasks")
    return {"cluster": choice.cluster, "capability": choice.capability, "teacher": choice.teacher,
            "dataset": cid, "examples": len(records), "left_out": left_out, "consistency": agreement,
            "student": card.id,
            "evaluation": card.evaluation, "canary": started}  # fmt: skip
