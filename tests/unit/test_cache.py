"""The sub-task cache (issue 16 §4, prsm/nwtn/cache.py): an identical language-model sub-task is
answered again from the cache, marked in the trace, billed at the hit's price, never across
accounts unless the operator shares it, never from other weights, never for tools, never past
its age; a hit does not count as a call of the model."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from prsm import metrics
from prsm.nwtn.cache import SubtaskCache
from prsm.nwtn.route import Router
from prsm.registry import DEFAULT_MODEL_ID
from tests.conftest import orchestrator
from tests.fakes import EchoLM

QUESTION = "Explain what entropy measures."


class CountingLM(EchoLM):
    def __init__(self):
        self.calls = 0

    async def run(self, call):
        self.calls += 1
        return await super().run(call)


@pytest.fixture
def lm(services, registry):
    model = CountingLM()
    services.models.host(DEFAULT_MODEL_ID, model)
    return model


def make_nwtn(services, embedder, **settings):
    services.settings = services.settings.model_copy(update=settings)
    return orchestrator(services, Router(services.registry, embedder), services.models)


def ask(nwtn, account: str = "alice") -> dict:
    return asyncio.run(nwtn.query(QUESTION, account))


def general(trace: dict) -> dict:
    (task,) = trace["tasks"]
    assert task["capability"] == "general"
    return task


def test_the_same_sub_task_again_is_a_cache_hit_billed_at_the_hit_price_and_not_a_model_call(
    services, embedder, lm, monkeypatch
):
    counted = []
    monkeypatch.setattr(
        metrics.SUBTASK_CACHE, "inc", lambda value=1.0, **labels: counted.append(labels["outcome"])
    )
    nwtn = make_nwtn(services, embedder)
    first = general(ask(nwtn))
    calls = services.registry.get(DEFAULT_MODEL_ID).calls
    second = general(ask(nwtn))
    assert lm.calls == 1 and first["cached"] is False and second["cached"] is True
    assert second["result"] == first["result"] and second["tokens_out"] == first["tokens_out"]
    assert int(second["cost"]) == int(first["cost"]) * services.settings.cache_price_bps // 10_000 > 0
    assert services.registry.get(DEFAULT_MODEL_ID).calls == calls  # the model did not run
    assert counted == ["miss", "hit"]  # the hit rate's counts (prsm_subtask_cache_total)


def test_answers_are_reused_only_for_the_account_that_paid_unless_shared(services, embedder, lm):
    services.ledger.open_account("bob")
    services.ledger.mint("bob", 10**18, "faucet-bob")
    nwtn = make_nwtn(services, embedder)
    ask(nwtn, "alice")
    assert general(ask(nwtn, "bob"))["cached"] is False and lm.calls == 2
    shared = make_nwtn(services, embedder, cache_scope="global")
    ask(shared, "alice")
    assert general(ask(shared, "bob"))["cached"] is True and lm.calls == 3


def test_other_weights_never_get_an_old_answer(services, embedder, lm):
    nwtn = make_nwtn(services, embedder)
    ask(nwtn)
    card = services.registry.get(DEFAULT_MODEL_ID)
    services.registry.update(dataclasses.replace(card, weights="file:///elsewhere/other-weights"))
    nwtn._cards_at = float("-inf")  # the card is read again at once
    assert general(ask(nwtn))["cached"] is False and lm.calls == 2


def test_no_cache_for_tools_when_off_or_past_its_age(services, embedder, lm):
    nwtn = make_nwtn(services, embedder)
    units = asyncio.run(nwtn.query("Convert 3 km to miles.", "alice"))
    again = asyncio.run(nwtn.query("Convert 3 km to miles.", "alice"))
    assert units["tasks"][0]["cached"] is False and again["tasks"][0]["cached"] is False  # tools: never
    off = make_nwtn(services, embedder, cache_ttl_s=0)
    ask(off)
    assert general(ask(off))["cached"] is False and lm.calls == 2
    on = make_nwtn(services, embedder, cache_ttl_s=3600)
    ask(on)  # stored now
    assert general(ask(on))["cached"] is True
    assert SubtaskCache(services.db, 0).expire() >= 1  # the gc job's expiry: past its age, gone
    assert general(ask(on))["cached"] is False
