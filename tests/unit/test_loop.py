"""The learning loop's choice and data set (issue 14 §4): the costliest cluster a transformers
model served, its training set from the logged instructions and that model's own answers, by
CID with provenance, and never a session of an account that opted out."""

from __future__ import annotations

import asyncio
import json

import pytest

from prsm import canary, consent, loop, stats
from prsm.errors import InvalidInput
from prsm.nwtn.execute import GENERAL_SYSTEM_PROMPT
from prsm.registry import DEFAULT_MODEL_ID

ENTROPY = "In one sentence, what is entropy?"


@pytest.fixture
def traffic(services, nwtn):
    services.ledger.open_account("bob")
    services.ledger.mint("bob", 10**18, "faucet-bob")
    consent.choose(services.db, "bob", False)  # bob's sessions never feed a data set
    for account, n in (("alice", 9), ("bob", 4)):
        for _ in range(n):
            asyncio.run(nwtn.query(ENTROPY, account))
    asyncio.run(nwtn.query("Briefly, what is a catalyst?", "alice"))
    asyncio.run(nwtn.query("Convert 5 km to miles", "alice"))


def test_the_costliest_cluster_becomes_a_data_set_of_shared_sessions_only(services, traffic, embedder):
    choice = loop.choose(services, embedder, stats.since(1), min_size=5)
    assert choice.teacher == DEFAULT_MODEL_ID and choice.capability == "general" and choice.volume == 13
    cid, records, left_out = loop.dataset(services, choice)
    assert (len(records), left_out) == (9, 4)
    records = [json.loads(line) for line in services.store.read(cid).splitlines()]
    with services.db.orm() as s:
        from sqlalchemy import select

        from prsm.db.models import PlanTask, QuerySession

        answers = {(t.session_id, t.key): t.result for t in s.scalars(select(PlanTask))}
        owners = {q.id: q.account for q in s.scalars(select(QuerySession))}
    assert {owners[r["session_id"]] for r in records} == {"alice"}
    assert all(
        r["prompt"] == ENTROPY and r["completion"] == answers[(r["session_id"], r["task"])] for r in records
    )
    # the prompt the teacher answered: NWTN's system message, then the instruction
    assert {r["system"] for r in records} == {GENERAL_SYSTEM_PROMPT}
    artifact = services.artifacts.get(cid)
    assert artifact["kind"] == "dataset" and artifact["creator"] == services.settings.operator_account
    assert artifact["name"].startswith(f"loop-{choice.cluster}-")


def test_too_little_shared_traffic_is_refused_naming_the_cluster(services, traffic, embedder):
    consent.choose(services.db, "alice", False)
    choice = loop.choose(services, embedder, stats.since(1), min_size=5)
    with pytest.raises(InvalidInput) as info:
        loop.dataset(services, choice)
    assert info.value.field == "cluster" and "13 left out" in str(info.value)


def test_a_cluster_with_a_canary_is_not_chosen_again_and_tools_never_are(
    services, traffic, embedder, registry
):
    import dataclasses

    choice = loop.choose(services, embedder, stats.since(1), min_size=5)
    student = dataclasses.replace(
        registry.get(DEFAULT_MODEL_ID), id="student", teacher=DEFAULT_MODEL_ID, weights=None
    )
    registry.register(student)
    canary.start(services.db, registry, "student", choice.cluster, DEFAULT_MODEL_ID)
    assert loop.choose(services, embedder, stats.since(1), min_size=5) is None
    assert (
        loop.choose(services, embedder, stats.since(1), min_size=1).volume == 1
    )  # the catalyst, never the tool


def test_the_default_and_an_accounts_choice(services):
    assert consent.allowed(services.db, "carol", True) and not consent.allowed(services.db, "carol", False)
    consent.choose(services.db, "carol", False)
    consent.choose(services.db, "carol", False)  # again: the same
    assert not consent.allowed(services.db, "carol", True)
    assert consent.excluded(services.db, {"carol", "dave"}, True) == {"carol"}
    assert consent.excluded(services.db, {"carol", "dave"}, False) == {"carol", "dave"}


class Answers:
    """Unit vectors by answer text: 'a' and 'b' point one way, 'c' at right angles."""

    def embed_many(self, texts):
        import numpy as np

        axis = {"a": (1.0, 0.0), "b": (1.0, 0.0), "c": (0.0, 1.0)}
        return [np.array(axis[t]) for t in texts]


def test_the_teachers_consistency_is_its_mean_agreement_across_different_instructions():
    def rec(prompt, completion):
        return {"prompt": prompt, "completion": completion}

    assert loop.consistency(Answers(), [rec("q1", "a"), rec("q1", "a")]) is None  # one instruction
    assert loop.consistency(Answers(), [rec("q1", "a"), rec("q2", "b")]) == pytest.approx(1.0)
    # three instructions: pairs (a, b) 1, (a, c) 0, (b, c) 0
    assert loop.consistency(Answers(), [rec("q1", "a"), rec("q2", "b"), rec("q3", "c")]) == pytest.approx(
        1 / 3
    )


def test_a_cluster_whose_answers_disagree_is_refused_before_anything_is_stored(
    services, traffic, embedder, monkeypatch
):
    monkeypatch.setattr(loop, "consistency", lambda embedder, records: 0.3)
    stored = services.store.put
    monkeypatch.setattr(services.store, "put", lambda body: pytest.fail("nothing is stored") or stored(body))
    with pytest.raises(InvalidInput) as info:
        loop.run(services, embedder, stats.since(1), min_size=5)
    assert info.value.field == "cluster" and "agree at 0.30" in str(info.value)
