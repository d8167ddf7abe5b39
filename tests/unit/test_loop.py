"""The learning loop's choice and data set (issue 14 §4): the costliest cluster a transformers
model served, its training set from the logged instructions and that model's own answers, by
CID with provenance, and never a session of an account that opted out."""

from __future__ import annotations

import asyncio
import json

import pytest

from prsm import canary, consent, loop, stats
from prsm.errors import InvalidInput
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
    cid, examples, left_out = loop.dataset(services, choice)
    assert (examples, left_out) == (9, 4)
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
