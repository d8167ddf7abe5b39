import asyncio

import pytest
from sqlalchemy import func, select

from prsm.db.models import PlanTask, QuerySession, ReasoningStep, SafetyFlag
from prsm.errors import InvalidInput, PlanRejected, PromptBlocked


def counts(db) -> dict[str, int]:
    with db.orm() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (QuerySession, PlanTask, ReasoningStep, SafetyFlag)
        }


def test_query_persists_the_whole_trace_and_returns_it(nwtn, services, registry):
    trace = asyncio.run(nwtn.query("Integrate x^2 from 0 to 3. Convert 2 km to m.", "alice"))
    assert trace["status"] == "completed"
    assert [t["model"] for t in trace["tasks"]] == ["sympy-cas", "pint-units"]
    assert trace["answer"].splitlines()[1].strip() == "9"
    assert {s["role"] for s in trace["steps"]} == {"safety", "planner", "router", "model", "compiler"}
    assert all(t["latency_ms"] > 0 for t in trace["tasks"])
    assert [s["model_id"] for s in trace["sources"]] == ["sympy-cas", "pint-units"]
    assert services.sessions.trace(trace["session_id"]) == trace
    assert registry.get("sympy-cas").calls == 1 and registry.get("sympy-cas").latency_ms > 0


def test_a_general_sub_task_goes_to_the_language_model_with_its_token_counts(nwtn):
    trace = asyncio.run(nwtn.query("Convert 3 km to m. In one sentence, what is entropy?", "alice"))
    general = trace["tasks"][1]
    assert general["capability"] == "general" and general["model"] == "smollm2-135m-instruct"
    assert general["result"] == "A short answer to: In one sentence, what is entropy?"
    assert general["tokens_in"] > 0 and general["tokens_out"] > 0
    assert int(general["cost"]) > 0  # priced per token


@pytest.mark.parametrize(
    "prompt,error",
    [
        ("   ", InvalidInput),
        ("x" * 9000, InvalidInput),
        (" ".join(f"{i}. What is {i} + 1?" for i in range(1, 20)), PlanRejected),
    ],
)
def test_rejected_prompt_leaves_nothing_behind(nwtn, db, prompt, error):
    before = counts(db)
    with pytest.raises(error) as info:
        asyncio.run(nwtn.query(prompt, "alice"))
    assert info.value.field == "prompt"
    assert counts(db) == before


def test_blocked_prompt_is_refused_and_kept_as_a_blocked_session_with_its_flag(nwtn, db):
    with pytest.raises(PromptBlocked):
        asyncio.run(nwtn.query("How do I synthesize a nerve agent at home?", "mallory"))
    with db.orm() as s:
        session = s.scalars(select(QuerySession)).one()
        assert session.status == "blocked"
        assert [f.category for f in session.flags] == ["weapons"]
        assert session.tasks == []


def test_a_planner_model_whose_output_fails_validation_falls_back_to_the_deterministic_plan(nwtn, settings):
    settings.planner_model = "sympy-cas"  # a tool cannot write JSON: its output is rejected
    trace = asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    assert trace["planner"] == "deterministic"
    assert trace["steps"][1]["input"] == "llm planner rejected"
    assert trace["tasks"][0]["result"] == "9"


def test_the_account_pays_and_the_users_tag_is_only_recorded(nwtn, services):
    trace = asyncio.run(nwtn.query("Convert 3 km to m", "alice", user="end-user-7"))
    assert (trace["account"], trace["user"]) == ("alice", "end-user-7")
    assert services.ledger.balance("alice") == 10**18 - int(trace["cost"]["charged"])
    assert services.sessions.trace(trace["session_id"])["account"] == "alice"


def test_a_disabled_card_gets_no_traffic_and_a_number_is_never_handed_to_a_language_model(
    nwtn, registry, services
):
    from prsm.errors import AllCandidatesFailed, UnknownModel

    registry.set_disabled("pint-units", True)
    nwtn._cards_at = float("-inf")  # the orchestrator re-reads cards once a second
    before = services.ledger.balance("alice")
    # The only units tool is off: the conversion fails cleanly rather than go to the general
    # model, which would make a number up; nothing is charged.
    with pytest.raises(AllCandidatesFailed, match="no registered model offers capability"):
        asyncio.run(nwtn.query("Convert 3 km to m", "alice"))
    assert services.ledger.balance("alice") == before
    trace = asyncio.run(nwtn.query("Convert 3 km to m. What is 2 + 2?", "alice"))
    assert [t["model"] for t in trace["tasks"]] == [None, "sympy-cas"]
    assert trace["status"] == "partial"
    with pytest.raises(UnknownModel):
        asyncio.run(
            nwtn.complete("pint-units", [{"role": "user", "content": "1 km to m"}], None, None, "alice")
        )


def test_a_prompt_the_tools_refuse_is_the_callers_mistake_and_costs_nothing(nwtn, services):
    from prsm.errors import QueryRefused

    before = services.ledger.balance("alice")
    with pytest.raises(QueryRefused) as refused:
        asyncio.run(nwtn.query("Evaluate 9^9^9^9.", "alice"))
    assert refused.value.status_code == 422 and refused.value.field == "prompt"
    assert services.ledger.balance("alice") == before


def test_a_question_in_words_is_answered_by_the_tools_with_values_passed_on(nwtn):
    trace = asyncio.run(
        nwtn.query(
            "Solve 2x + 3 = 15 for x, then multiply the result by 3. Also convert 4 miles to kilometers. "
            "What is the kinetic energy of a 2 kg mass moving at 3 m/s?",
            "alice",
        )
    )
    tasks = trace["tasks"]
    assert [(t["model"], t["verified"]) for t in tasks] == [
        ("sympy-cas", True), ("sympy-cas", True), ("pint-units", True), ("physics-formulas", True)
    ]  # fmt: skip
    assert tasks[1]["instruction"] == "multiply 6 by 3." and tasks[1]["result"] == "18"
    assert tasks[2]["result"] == "6.437376 kilometer"
    assert tasks[3]["result"].startswith("K = 9 joule (kinetic energy: K = m*v^2/2")
    assert "unverified" not in trace["answer"]


def test_an_output_format_a_model_cannot_decode_is_the_callers_mistake_and_holds_nothing(nwtn, services):
    """PRSM's language models decode text or the task-plan schema; a tool answers text. Any
    other response_format is a 422 naming it before anything is held, never a model failure."""
    from prsm.errors import InvalidInput
    from prsm.nwtn.plan import plan_response_format
    from prsm.registry import DEFAULT_MODEL_ID

    hi = [{"role": "user", "content": "hi"}]
    before = services.ledger.balance("alice")
    plan = plan_response_format(4)
    for model, asked in (
        (DEFAULT_MODEL_ID, {"type": "json_object"}),
        (DEFAULT_MODEL_ID, {"type": "json_schema", "json_schema": {"name": "mine", "schema": {}}}),
        (DEFAULT_MODEL_ID, {"type": "json_schema", "json_schema": "prsm_task_plan"}),
        (DEFAULT_MODEL_ID, {**plan, "json_schema": {**plan["json_schema"], "max_tasks": 10**9}}),
        (DEFAULT_MODEL_ID, {**plan, "json_schema": {**plan["json_schema"], "max_tasks": "many"}}),
        ("pint-units", plan),
    ):
        with pytest.raises(InvalidInput) as refused:
            asyncio.run(nwtn.complete(model, hi, 8, asked, "alice"))
        assert refused.value.status_code == 422 and refused.value.field == "response_format"
    assert services.ledger.balance("alice") == before and services.ledger.balance("escrow:alice") == 0
    # Text, asked for by name, is what every model answers.
    output, _ = asyncio.run(nwtn.complete("pint-units", [{"role": "user", "content": "1 km to m"}], None,
                                          {"type": "text"}, "alice"))  # fmt: skip
    assert output.text.startswith("1000")


def test_queries_that_find_the_cards_stale_at_once_share_one_registry_read(nwtn, registry, monkeypatch):
    reads = []
    real = registry.list

    def slow_list():
        reads.append(1)
        import time

        time.sleep(0.05)  # a read under load: queries keep arriving meanwhile
        return real()

    monkeypatch.setattr(nwtn.registry, "list", slow_list)

    async def many() -> list[dict]:
        return await asyncio.gather(*(nwtn.cards({"pint-units"}) for _ in range(20)))

    nwtn._cards_at = float("-inf")
    copies = asyncio.run(many())
    assert len(reads) == 1
    assert all("pint-units" in c for c in copies)
    # A card the copy does not have yet (registered a moment ago) is read for at once.
    asyncio.run(nwtn.cards({"pint-units", "registered-just-now"}))
    assert len(reads) == 2
