"""Canaries (issue 14 §4): a student takes a stepped share of one cluster's traffic, every answer
it gives there graded in shadow against the incumbent; a sequential test steps it up and
promotes it, or rolls it back and disables its card; an operator may decide by hand."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import numpy as np
import pytest
from sqlalchemy import update

from prsm import canary, clusters
from prsm.errors import InvalidInput, UnknownModel
from prsm.nwtn.route import Router
from prsm.registry import DEFAULT_MODEL_ID
from prsm.types import SubTask
from tests.conftest import orchestrator
from tests.fakes import EchoLM

OPERATOR = "local-operator"
QUESTION = "In one sentence, what is entropy?"


class TerseLM:
    async def run(self, call):
        from prsm.types import ModelOutput

        return ModelOutput(text="Disorder.", tokens_in=10, tokens_out=2)


@pytest.fixture
def world(services, registry, models, embedder):
    """A saved cluster of entropy questions, a cheap student of the default model (answering as
    `backend`), a router that places sub-tasks in the cluster, and a funded operator."""
    (vector,) = embedder.embed_many([QUESTION])
    (cluster,) = clusters.save(
        services.db, [clusters.TaskCluster("c-entropy", "general", embedder.name, vector, 10, QUESTION)]
    )
    teacher = registry.get(DEFAULT_MODEL_ID)
    student = dataclasses.replace(teacher, id="student", teacher=DEFAULT_MODEL_ID, weights=None,
                                  price_per_1k_tokens=teacher.price_per_1k_tokens // 10, owner="someone")  # fmt: skip
    registry.register(student)
    services.ledger.open_account(OPERATOR)
    services.ledger.mint(OPERATOR, 10**17, "fund-operator")
    router = Router(registry, embedder)
    nwtn = orchestrator(services, router, models)
    nwtn.reference_grader.share = 0.0  # only canary answers are graded here
    return nwtn, router, cluster


def _ask(nwtn, n: int) -> list[dict]:
    async def go():
        traces = []
        for _ in range(n):  # each graded before the next: past MAX_GRADING in flight, one would not be
            traces.append(await nwtn.query(QUESTION, "alice"))
            await nwtn.grades_written()
        return traces

    return asyncio.run(go())


def _set_share(services, share: float) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(update(canary.CANARIES).values(share=share))


def test_the_test_is_a_z_test_on_the_mean_grade_with_a_variance_floor():
    mean, z = canary.test(20, 19.6, 19.6 * 0.98 + 0.0, 0.95)  # 0.98 each: no spread
    assert mean == pytest.approx(0.98) and z == pytest.approx(0.03 / (0.01 / np.sqrt(20)))
    mean, z = canary.test(10, 5.0, 10 * 0.25 + 10 * 0.25, 0.95)  # half 0, half 1: wide
    assert mean == 0.5 and z < -canary.Z
    assert canary.test(1, 1.0, 1.0, 0.95) == (1.0, 0.0)  # one grade decides nothing


def test_starting_a_canary_checks_what_it_names(services, world):
    with pytest.raises(UnknownModel):
        canary.start(services.db, services.registry, "nobody", "c-entropy", DEFAULT_MODEL_ID)
    with pytest.raises(UnknownModel) as info:
        canary.start(services.db, services.registry, "student", "c-entropy", "nobody")
    assert info.value.field == "incumbent"
    with pytest.raises(InvalidInput) as info:
        canary.start(services.db, services.registry, "student", "no-such-cluster", DEFAULT_MODEL_ID)
    assert info.value.field == "cluster"
    started = canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)
    assert started["status"] == "canary" and started["share"] == canary.STEPS[0]
    assert started["decisions"][0]["action"] == "start"
    with pytest.raises(InvalidInput):
        canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)


def test_the_router_gives_a_canary_its_share_of_the_cluster_and_a_promoted_student_all(services, world):
    _, router, _ = world
    canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)
    router._loaded_at = float("-inf")
    router._random = random.Random(7)
    task, other = SubTask("t1", QUESTION, "general"), SubTask("t1", "Who wrote Hamlet?", "general")
    firsts = [r[0] for r in router.rank_many([(task, frozenset(), None)] * 2000)]
    on_student = [c for c in firsts if c.model_id == "student"]
    assert 0.03 < len(on_student) / 2000 < 0.07  # 5 %
    assert all(c.canary == DEFAULT_MODEL_ID and c.cluster == "c-entropy" for c in on_student)
    off = [r for r in router.rank_many([(task, frozenset(), None)] * 200) if r[0].model_id != "student"]
    assert all("student" not in [c.model_id for c in r] for r in off)  # kept off the rest
    assert router.rank(other)[0].cluster == ""  # outside the cluster nothing changes
    canary.pin(services.db, "student")
    router._loaded_at = float("-inf")
    firsts = [r[0] for r in router.rank_many([(task, frozenset(), None)] * 50)]
    assert {c.model_id for c in firsts} == {"student"} and {c.canary for c in firsts} == {""}


def test_a_student_that_agrees_with_its_incumbent_steps_up_and_is_promoted(services, models, world):
    nwtn, router, _ = world
    models.host("student", EchoLM())  # answers exactly as the incumbent does: agreement 1
    canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)
    _set_share(services, 1.0)  # every sub-task of the cluster, so the test needs few queries
    router._loaded_at = float("-inf")
    traces = _ask(nwtn, canary.MIN_STEP_GRADES)
    assert {t["tasks"][0]["model"] for t in traces} == {"student"}
    (state,) = canary.status(services.db)
    assert state["grades"] == canary.MIN_STEP_GRADES and state["mean_grade"] == pytest.approx(1.0)
    steps = []
    for _ in canary.STEPS:
        steps += canary.decide(services.db, services.registry, 0.95)
        _set_share(services, 1.0) if canary.status(services.db)[0]["status"] == "canary" else None
        router._loaded_at = float("-inf")
        _ask(nwtn, canary.MIN_STEP_GRADES)
    assert [d["action"] for d in steps] == ["step", "step", "promote"]
    (state,) = canary.status(services.db)
    assert state["status"] == "promoted" and [d["action"] for d in state["decisions"]] == [
        "start", "step", "step", "promote"]  # fmt: skip
    assert all(d["z"] >= canary.Z for d in state["decisions"][1:])


def test_a_student_that_disagrees_is_rolled_back_and_its_card_disabled(services, models, world):
    nwtn, router, _ = world
    models.host("student", TerseLM())
    canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)
    _set_share(services, 1.0)
    router._loaded_at = float("-inf")
    _ask(nwtn, canary.MIN_GRADES)
    (decision,) = canary.decide(services.db, services.registry, 0.95)
    assert decision["action"] == "roll back" and decision["mean"] < 0.95
    assert services.registry.get("student").disabled
    router._loaded_at = float("-inf")
    assert {t["tasks"][0]["model"] for t in _ask(nwtn, 3)} == {DEFAULT_MODEL_ID}  # the cluster is back
    assert canary.decide(services.db, services.registry, 0.95) == []  # decided once


def test_the_bar_is_the_target_times_the_incumbents_own_agreement(services, models, world):
    """Grades of 0.85 fail an absolute bar (0.95) but hold 0.95 x a baseline of 0.8: an
    incumbent whose own answers across the cluster agree at 0.8 asks no more of its student."""
    nwtn, router, _ = world
    for student, baseline in (("student", 0.8), ("student2", 1.0)):
        if student == "student2":
            card = dataclasses.replace(services.registry.get("student"), id="student2", disabled=False)
            services.registry.register(card)
        canary.start(
            services.db, services.registry, student, "c-entropy", DEFAULT_MODEL_ID, baseline=baseline
        )
        with services.db.engine.begin() as conn:  # 12 grades: six of 0.8, six of 0.9
            conn.execute(update(canary.CANARIES).where(canary.CANARIES.c.student == student)
                         .values(n=12, total=6 * 0.8 + 6 * 0.9, total_sq=6 * 0.64 + 6 * 0.81))  # fmt: skip
    decided = {d["student"]: d for d in canary.decide(services.db, services.registry, 0.95, (0.2, 0.5), 10)}
    assert decided["student"]["action"] == "step" and decided["student"]["bar"] == pytest.approx(0.76)
    assert decided["student2"]["action"] == "roll back" and decided["student2"]["bar"] == 0.95
    assert {s["student"]: s["baseline"] for s in canary.status(services.db)} == {
        "student": 0.8,
        "student2": 1.0,
    }
    for bad in (0.0, 1.5):
        with pytest.raises(InvalidInput) as info:
            canary.start(services.db, services.registry, "student", "c-other", DEFAULT_MODEL_ID, baseline=bad)
        assert info.value.field == "baseline"


def test_an_operator_rolls_back_or_pins_by_hand(services, world):
    canary.start(services.db, services.registry, "student", "c-entropy", DEFAULT_MODEL_ID)
    with pytest.raises(InvalidInput):
        canary.pin(services.db, "nobody")
    (state,) = canary.rollback(services.db, services.registry, "student")
    assert state["status"] == "rolled_back" and state["decisions"][-1]["reason"] == "by the operator"
    assert services.registry.get("student").disabled
