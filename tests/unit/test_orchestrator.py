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


def test_a_disabled_card_gets_no_traffic_and_is_not_quoted(nwtn, registry):
    from prsm.errors import UnknownModel

    registry.set_disabled("pint-units", True)
    nwtn._cards_at = float("-inf")  # the orchestrator re-reads cards once a second
    trace = asyncio.run(nwtn.query("Convert 3 km to m", "alice"))
    assert trace["tasks"][0]["model"] != "pint-units"
    with pytest.raises(UnknownModel):
        asyncio.run(
            nwtn.complete("pint-units", [{"role": "user", "content": "1 km to m"}], None, None, "alice")
        )
