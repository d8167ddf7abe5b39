"""Quality (issue 14 §1-2): grades from tools, from a reference model in shadow and from users,
kept per model and capability with their uncertainty, shown on cards, used by the router with a
quality/cost trade-off that a query may override."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math

import pytest
from pydantic import ValidationError

from prsm import quality
from prsm.api.schemas import QueryRequest
from prsm.errors import AllCandidatesFailed, InvalidInput, QueryRefused
from prsm.nwtn.route import EXPLORATION, score_candidates
from prsm.registry import DEFAULT_CARDS, DEFAULT_MODEL_ID
from prsm.settings import Settings, tradeoff
from prsm.types import ModelCall, ModelCard, ModelKind, ModelOutput, SubTask

OPERATOR = "local-operator"
STUDENT = "smol-student"


class TerseLM:
    """A language model whose answers differ from EchoLM's: what a grader must notice."""

    async def run(self, call: ModelCall) -> ModelOutput:
        return ModelOutput(text="Entropy measures disorder.", tokens_in=12, tokens_out=4)


def test_an_estimate_starts_at_one_half_and_narrows_with_grades():
    assert quality.UNMEASURED.mean == 0.5 and quality.UNMEASURED.std == pytest.approx(1 / math.sqrt(12))
    good = quality.Estimate(n=40, total=36)
    assert good.mean == pytest.approx(37 / 42) and good.std < 0.06
    assert quality.Estimate(n=4, total=4).std > good.std
    assert good.to_dict() == {"mean": round(37 / 42, 4), "std": round(good.std, 4), "n": 40}
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError):
            quality.Grade("m", "general", bad, "tool")


def test_a_tools_answers_and_failures_are_its_grades_and_refusals_are_not(services, nwtn, registry):
    asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    asyncio.run(nwtn.query("Convert 5 km to miles", "alice"))
    with pytest.raises(QueryRefused):  # the tool refuses an input past its caps: not its fault
        asyncio.run(nwtn.query("Evaluate 9^9^9^9.", "alice"))
    measured = registry.measured_quality()
    assert measured["sympy-cas"][("math", "")] == quality.Estimate(1, 1.0)
    assert measured["pint-units"][("units", "")] == quality.Estimate(1, 1.0)
    assert DEFAULT_MODEL_ID not in measured  # a language model is graded by a reference only

    async def broken(call):
        raise RuntimeError("the tool's worker died")

    services.models.host("sympy-cas", type("Broken", (), {"run": staticmethod(broken)})())
    with pytest.raises(AllCandidatesFailed):
        asyncio.run(nwtn.query("Integrate x^3 from 0 to 1", "alice"))
    assert registry.measured_quality()["sympy-cas"][("math", "")] == quality.Estimate(2, 1.0)


def test_a_users_rating_of_a_sub_task_grades_its_model_and_a_new_one_replaces_it(services, nwtn, registry):
    trace = asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice"))
    task = trace["tasks"][0]
    assert task["model"] == DEFAULT_MODEL_ID
    services.sessions.rate(trace["session_id"], task["key"], 0.2, "vague")
    assert registry.measured_quality()[DEFAULT_MODEL_ID][("general", "")] == quality.Estimate(1, 0.2)
    services.sessions.rate(trace["session_id"], task["key"], 0.9, None)
    services.sessions.rate(trace["session_id"], None, 0.0, "the answer as a whole")  # not one model's
    est = registry.measured_quality()[DEFAULT_MODEL_ID][("general", "")]
    assert est.n == 1 and est.total == pytest.approx(0.9)


@pytest.fixture
def student(services, registry, models):
    """A distilled student of the default model: same description, a tenth of its price."""
    teacher = registry.get(DEFAULT_MODEL_ID)
    card = dataclasses.replace(
        teacher, id=STUDENT, teacher=DEFAULT_MODEL_ID, price_per_1k_tokens=teacher.price_per_1k_tokens // 10,
        weights=None, calls=0, failures=0, latency_ms=None,
    )  # fmt: skip
    registry.register(card)
    models.host(STUDENT, TerseLM())
    return card


def test_a_students_answer_is_graded_in_shadow_against_its_teacher_paid_by_the_operator(
    services, nwtn, student
):
    ledger = services.ledger
    nwtn.reference_grader.share = 0.0
    asyncio.run(nwtn.query("Convert 5 km to miles", "alice"))  # the operator's account opens as a payee
    ledger.mint(OPERATOR, 10**17, "fund-operator")
    nwtn.reference_grader.share = 1.0

    async def ask():
        trace = await nwtn.query("In one sentence, what is entropy?", "alice", route="cost")
        await nwtn.grades_written()
        return trace

    operator_before, alice_before = ledger.balance(OPERATOR), ledger.balance("alice")
    trace = asyncio.run(ask())
    assert trace["tasks"][0]["model"] == STUDENT
    charged = int(trace["cost"]["charged"])
    assert ledger.balance("alice") == alice_before - charged  # the user pays for its answer only

    full = services.sessions.trace(trace["session_id"])
    (step,) = [s for s in full["steps"] if s["role"] == "grader"]
    note = json.loads(step["output"])
    assert note["reference"] == DEFAULT_MODEL_ID and note["paid_by"] == OPERATOR and note["shadow"]
    assert note["reference_answer"].startswith("A short answer to")
    assert 0.0 <= note["score"] < 1.0  # the terse answer shares few words with the teacher's
    # The operator paid the reference's call (and got its own operator share of it back).
    paid = int(note["charged"])
    assert paid > 0 and ledger.balance(OPERATOR) < operator_before + int(trace["cost"]["split"][OPERATOR])

    measured = services.registry.measured_quality()
    est = measured[STUDENT][("general", "")]
    assert est.n == 1 and est.total == pytest.approx(note["score"], abs=1e-4)
    assert measured[DEFAULT_MODEL_ID][("general", "")] == quality.Estimate(1, 1.0)


def test_without_funds_the_operator_grades_nothing_and_the_answer_is_unaffected(services, nwtn, student):
    nwtn.reference_grader.share = 1.0

    async def ask():
        trace = await nwtn.query("In one sentence, what is entropy?", "alice", route="cost")
        await nwtn.grades_written()
        return trace

    trace = asyncio.run(ask())
    assert trace["status"] == "completed"
    (step,) = [s for s in services.sessions.trace(trace["session_id"])["steps"] if s["role"] == "grader"]
    assert "cannot pay" in json.loads(step["output"])["skipped"]
    assert services.registry.measured_quality() == {}


def test_a_model_is_never_graded_against_itself_and_unsampled_traffic_is_not_graded(services, nwtn, student):
    grader = nwtn.reference_grader
    assert grader.reference_for(services.registry.get(DEFAULT_MODEL_ID)) is None  # no teacher
    grader.reference = STUDENT
    assert grader.reference_for(services.registry.get(STUDENT)) is None
    grader.reference, grader.share = None, 0.0
    asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice", route="cost"))
    assert services.registry.measured_quality() == {}


def _two_general_models(dear_quality: quality.Estimate, cheap_quality: quality.Estimate):
    base = DEFAULT_CARDS[0]
    dear = dataclasses.replace(base, id="dear", price_per_1k_tokens=2 * 10**15)
    cheap = dataclasses.replace(base, id="cheap", price_per_1k_tokens=2 * 10**14)
    vector = [1.0] + [0.0] * 383
    import numpy as np

    vectors = {c.id: np.array(vector, dtype=np.float32) for c in (dear, cheap)}
    measured = {"dear": {("general", ""): dear_quality}, "cheap": {("general", ""): cheap_quality}}

    def rank(route: float) -> list:
        task = SubTask("t1", "what is entropy?", "general")
        return score_candidates(task, [dear, cheap], np.array(vector, dtype=np.float32), vectors,
                                quality=measured, route=route)  # fmt: skip

    return rank


def test_the_trade_off_decides_between_a_better_dearer_model_and_a_cheaper_one():
    rank = _two_general_models(quality.Estimate(100, 95), quality.Estimate(100, 55))
    assert rank(tradeoff("quality"))[0].model_id == "dear"
    assert rank(tradeoff("cost"))[0].model_id == "cheap"
    top = rank(1.0)[0]
    assert top.quality == pytest.approx(96 / 102) and top.quality_n == 100
    assert top.to_dict()["quality_n"] == 100 and "quality_term" in top.to_dict()
    # As good as the dear one: the cheap one wins at every trade-off but pure quality.
    same = _two_general_models(quality.Estimate(100, 95), quality.Estimate(100, 95))
    assert same(0.9)[0].model_id == "cheap"


def test_an_unmeasured_model_gets_a_bounded_exploration_bonus():
    rank = _two_general_models(quality.Estimate(0, 0), quality.Estimate(1000, 600))
    by_id = {c.model_id: c for c in rank(1.0)}
    bonus = by_id["dear"].quality_term - by_id["dear"].quality
    assert bonus == pytest.approx(EXPLORATION / math.sqrt(12)) and bonus < 0.15
    assert by_id["cheap"].quality_term - by_id["cheap"].quality < 0.01
    # on quality alone an unknown model is tried before a measured 0.6, never before a 0.7
    assert rank(1.0)[0].model_id == "dear"
    assert (
        _two_general_models(quality.Estimate(0, 0), quality.Estimate(1000, 700))(1.0)[0].model_id == "cheap"
    )


def test_routes_are_named_or_numbers_and_anything_else_is_refused_naming_the_field():
    assert [tradeoff(r) for r in ("quality", "Balanced", "cost", 0.25, "0.7")] == [1.0, 0.5, 0.0, 0.25, 0.7]
    for bad in ("fast", -0.1, 1.5, "nan", float("inf")):
        with pytest.raises(InvalidInput) as info:
            tradeoff(bad)
        assert info.value.field == "route"
    assert QueryRequest(prompt="x", route="cost").route == "cost"
    assert QueryRequest(prompt="x", route=0.3).route == 0.3
    for bad in ("fast", 2, float("nan")):
        with pytest.raises(ValidationError) as info:
            QueryRequest(prompt="x", route=bad)
        assert "route" in str(info.value)
    with pytest.raises(ValidationError):
        Settings(route="fast", _env_file=None)
    assert Settings(route="cost", _env_file=None).route_tradeoff == 0.0


def test_a_query_route_overrides_the_operators(services, nwtn, student):
    asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice", route="cost"))
    # pure quality: price does not count; both unmeasured and alike: the tie goes to the cheaper
    trace = asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice", route="quality"))
    ranking = trace["tasks"][0]["ranking"]
    assert {r["model_id"] for r in ranking} == {STUDENT, DEFAULT_MODEL_ID}
    with pytest.raises(InvalidInput):
        asyncio.run(nwtn.query("what is entropy?", "alice", route="fastest"))


def test_a_cards_quality_is_forgotten_when_what_runs_behind_it_changes(services, registry, student):
    with services.db.engine.begin() as conn:
        quality.record(conn, [quality.Grade(STUDENT, "general", 0.8, "feedback")])
    assert registry.measured_quality([STUDENT])[STUDENT][("general", "")].n == 1
    registry.update(dataclasses.replace(student, description="a new description"))  # same weights
    assert STUDENT in registry.measured_quality()
    registry.update(dataclasses.replace(student, weights="cid:bafy-other-weights"))
    assert STUDENT not in registry.measured_quality()
    with services.db.engine.begin() as conn:
        quality.record(conn, [quality.Grade(STUDENT, "general", 0.8, "feedback")])
    registry.delete(STUDENT)
    assert registry.measured_quality() == {}


def test_a_cards_api_entry_shows_its_quality_by_capability():
    from prsm.api.http import model_entry

    card = ModelCard(id="m", kind=ModelKind.TOOL, description="d", owner="o", licence="MIT")
    entry = model_entry(card, {("math", ""): quality.Estimate(10, 9), ("math", "c7"): quality.Estimate(2, 2)})
    assert entry["measured_quality"] == {"math": quality.Estimate(10, 9).to_dict()}
    assert model_entry(card)["measured_quality"] == {}


def test_concurrent_grades_are_all_counted(services):
    from tests.quality_checks import check_concurrent_grades_are_all_counted

    check_concurrent_grades_are_all_counted(services)
