import dataclasses

import pytest

from prsm.nwtn.route import MarketPolicy, Router, estimated_cost, score_candidates
from prsm.registry import DEFAULT_CARDS
from prsm.types import SubTask


@pytest.fixture
def router(registry, embedder):
    return Router(registry, embedder)


def test_math_goes_to_the_algebra_system_and_never_to_a_general_model(router):
    ranked = router.rank(SubTask("t1", "differentiate x^2 sin(x)", "math"))
    assert [c.model_id for c in ranked] == ["sympy-cas"]
    assert ranked[0].tag == 1.0


def test_a_formula_question_goes_to_the_formula_tool(router):
    ranked = router.rank(SubTask("t1", "the kinetic energy of a 2 kg mass at 3 m/s", "formula"))
    assert [c.model_id for c in ranked] == ["physics-formulas"]


def test_unit_conversion_goes_to_pint(router):
    assert router.rank(SubTask("t1", "convert 3 km to miles", "units"))[0].model_id == "pint-units"


def test_a_tool_never_gets_a_task_outside_its_tags(router):
    ranked = router.rank(SubTask("t1", "what is entropy?", "general"))
    assert [c.model_id for c in ranked] == ["smollm2-135m-instruct"]


def test_an_open_circuit_removes_the_model_from_the_ranking(router):
    ranked = router.rank(SubTask("t1", "integrate x", "math"), frozenset({"sympy-cas"}))
    assert ranked == []  # no other card claims math: the sub-task fails rather than be guessed
    ranked = router.rank(SubTask("t1", "what is entropy?", "general"), frozenset({"smollm2-135m-instruct"}))
    assert ranked == []


def test_a_batch_of_sub_tasks_is_ranked_as_each_alone(router):
    tasks = [SubTask("t1", "integrate x", "math"), SubTask("t2", "convert 1 km to m", "units")]
    batch = router.rank_many([(t, frozenset(), None) for t in tasks])
    assert batch == [router.rank(t) for t in tasks]


def test_cheaper_faster_and_healthier_cards_rank_higher(embedder):
    base = next(c for c in DEFAULT_CARDS if c.id == "sympy-cas")
    cheap = dataclasses.replace(base, id="cheap", price_per_call=10**12)
    pricey = dataclasses.replace(base, id="pricey", price_per_call=10**16)
    slow = dataclasses.replace(base, id="slow", latency_ms=5000.0, price_per_call=10**12)
    flaky = dataclasses.replace(base, id="flaky", calls=10, failures=8, price_per_call=10**12)
    cards = [pricey, slow, flaky, cheap]
    vectors = dict(
        zip([c.id for c in cards], embedder.embed_many([c.capability_text for c in cards]), strict=True)
    )
    task = SubTask("t1", "integrate x", "math")
    ranked = score_candidates(task, cards, embedder.embed_many([task.text])[0], vectors)
    assert ranked[0].model_id == "cheap"
    assert ranked[-1].model_id == "flaky"
    assert {c.model_id: c.estimated_cost for c in ranked}["pricey"] == 10**16


def test_the_price_score_uses_the_charge_formula():
    from prsm.ftns.pricing import call_cost
    from prsm.nwtn.route import ESTIMATED_TOKENS_IN, ESTIMATED_TOKENS_OUT

    lm = next(c for c in DEFAULT_CARDS if c.kind == "transformers")
    assert estimated_cost(lm) == call_cost(lm, ESTIMATED_TOKENS_IN, ESTIMATED_TOKENS_OUT) > 0


def test_card_embeddings_are_computed_once_and_stored_on_the_card(registry, embedder):
    Router(registry, embedder).cards()
    stored = registry.embeddings()
    assert set(stored) == {c.id for c in DEFAULT_CARDS}
    key, vector = stored["sympy-cas"]
    assert key.startswith(f"{embedder.name}:") and len(vector) == 384 * 4


def _scored(embedder, cards, policy, explore=False):
    vectors = dict(
        zip([c.id for c in cards], embedder.embed_many([c.capability_text for c in cards]), strict=True)
    )
    task = SubTask("t1", "integrate x", "math")
    return score_candidates(
        task, cards, embedder.embed_many([task.text])[0], vectors, frozenset(), policy, explore
    )


def test_a_new_strangers_card_gets_traffic_only_on_the_exploration_share_until_proven(embedder):
    """One card cannot take a capability's traffic on the day it registers by pricing itself at
    zero: it is a candidate only on the exploration share, and fully after `proven_calls`."""
    base = next(c for c in DEFAULT_CARDS if c.id == "sympy-cas")
    free = dataclasses.replace(base, id="mallory-free", owner="mallory", price_per_call=0)
    policy = MarketPolicy(proven_calls=20)
    assert [c.model_id for c in _scored(embedder, [base, free], policy)] == ["sympy-cas"]
    explored = _scored(embedder, [base, free], policy, explore=True)
    assert [c.model_id for c in explored] == ["mallory-free", "sympy-cas"] and not explored[0].proven
    # exploring never raises a quote: a new card dearer than the proven ones is not explored
    dear = dataclasses.replace(free, id="mallory-dear", price_per_call=10**17)
    assert [c.model_id for c in _scored(embedder, [base, dear], policy, explore=True)] == ["sympy-cas"]
    # where no proven card offers the capability, the new ones serve
    assert [c.model_id for c in _scored(embedder, [dear], policy)] == ["mallory-dear"]
    proven = dataclasses.replace(free, calls=20)
    assert _scored(embedder, [base, proven], policy)[0].model_id == "mallory-free"
    trusted = MarketPolicy(trusted_owners=frozenset({"prsm-foundation", "mallory"}))
    assert _scored(embedder, [base, free], trusted)[0].model_id == "mallory-free"


def test_new_cards_get_about_their_share_of_sub_tasks(registry, embedder):
    from prsm.types import ModelCard

    registry.register(ModelCard(id="fresh-cas", kind="tool", description=next(c for c in DEFAULT_CARDS if c.id == "sympy-cas").description,
                                owner="mallory", licence="MIT", tags=("math",), price_per_call=0, endpoint="tool:math"))  # fmt: skip
    router = Router(registry, embedder, policy=MarketPolicy(new_card_share=0.2))
    firsts = [
        c[0].model_id
        for c in router.rank_many([(SubTask("t1", "integrate x", "math"), frozenset(), None)] * 1000)
    ]
    assert 120 < firsts.count("fresh-cas") < 280  # 200 expected; binomial sd ~13


def test_a_card_priced_past_the_operators_bounds_is_not_a_candidate(embedder):
    base = next(c for c in DEFAULT_CARDS if c.id == "sympy-cas")
    dear = dataclasses.replace(base, id="dear", price_per_call=10**30, calls=100)
    ranked = _scored(embedder, [base, dear], MarketPolicy(max_price_per_call=10**18))
    assert [c.model_id for c in ranked] == ["sympy-cas"]
