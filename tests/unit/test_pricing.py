import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from prsm.db.models import LedgerTransaction, QuerySession
from prsm.errors import AllCandidatesFailed, InsufficientFunds, InvalidInput, ModelCallFailed
from prsm.ftns.ledger import TREASURY
from prsm.ftns.pricing import Shares, call_cost, quote, split
from prsm.registry import DEFAULT_CARDS, DEFAULT_MODEL_ID
from prsm.settings import Settings
from prsm.types import Candidate, ModelCard, ModelOutput, SubTask, TaskPlan

LM = DEFAULT_CARDS[0]  # 2e15 per 1k tokens
TOOL = DEFAULT_CARDS[1]  # 1e14 per call
STUDENT = ModelCard(
    "student", "tool", "a distilled tool", "carol", "MIT", price_per_call=1000, teacher=TOOL.id
)
CARDS = {c.id: c for c in (*DEFAULT_CARDS, STUDENT)}
SHARES = Shares.from_settings(Settings(_env_file=None))  # the defaults: 80 / 15 / 5 %, royalty 10 %


def test_call_cost_is_the_flat_price_plus_tokens_rounded_up():
    assert call_cost(TOOL, 500, 3) == 10**14
    assert call_cost(LM, 100, 50) == 2 * 10**15 * 150 // 1000
    cheap = ModelCard("x", "openai", "cheap model", "o", "MIT", price_per_1k_tokens=1)
    assert call_cost(cheap, 1, 0) == 1  # a fraction of a base unit is charged as one


def test_split_pays_owner_operator_treasury_80_15_5_and_fee_to_operator():
    parts = split([(LM, 1000)], 100, 10**6, SHARES, CARDS)
    assert parts == {"prsm-foundation": 800, "local-operator": 150 + 95, TREASURY: 50 + 5}


def test_a_student_pays_its_teachers_owner_a_royalty_from_the_owner_share():
    parts = split([(STUDENT, 1000)], 0, 10**6, SHARES, CARDS)
    assert parts == {"carol": 720, "prsm-foundation": 80, "local-operator": 150, TREASURY: 50}


def test_a_charge_past_the_quote_is_scaled_down_to_it():
    parts = split([(LM, 1000), (TOOL, 3000)], 1000, 2500, SHARES, CARDS)
    assert sum(parts.values()) == 2500


@given(
    costs=st.lists(st.tuples(st.sampled_from(list(CARDS.values())), st.integers(0, 10**24)), max_size=12),
    fee=st.integers(0, 10**20),
    cap=st.integers(0, 10**26),
    owner=st.integers(0, 10_000),
)
def test_split_parts_are_non_negative_and_sum_exactly_to_the_charge(costs, fee, cap, owner):
    shares = Shares(owner, (10_000 - owner) // 2, 10_000 - owner - (10_000 - owner) // 2, 1000, "op")
    parts = split(costs, fee, cap, shares, CARDS)
    assert all(v > 0 for v in parts.values())
    assert sum(parts.values()) == min(cap, fee + sum(c for _, c in costs))


def test_shares_that_do_not_add_up_are_refused():
    with pytest.raises(InvalidInput):
        Shares(8000, 1500, 400, 1000, "op")


def test_the_quote_covers_the_longest_input_and_answer_on_the_dearest_candidate_of_each_task():
    plan = TaskPlan(
        (SubTask("t1", "Integrate x^2", "math"), SubTask("t2", "Explain {t1}", "general", ("t1",))), "d"
    )
    q = quote(plan, {"t1": [TOOL, LM], "t2": [LM]}, 96, 7)
    longest_t2 = call_cost(LM, len("Explain {t1}") // 2 + 1 + 48 + 96, 96)
    assert q == 7 + call_cost(LM, len("Integrate x^2") // 2 + 1 + 48, 96) + longest_t2
    # a card that would not run a task is not quoted for it
    assert quote(plan, {"t1": [TOOL], "t2": [LM]}, 96, 7) == 7 + call_cost(TOOL, 1, 96) + longest_t2


# --- in the query path ------------------------------------------------------------------------


def test_a_query_holds_its_quote_and_captures_the_measured_cost_split_between_accounts(nwtn, services):
    ledger = services.ledger
    trace = asyncio.run(nwtn.query("Integrate x^2 from 0 to 3. Convert 2 km to m.", "alice"))
    cost = trace["cost"]
    charged, quoted = int(cost["charged"]), int(cost["quoted"])
    # two tool calls at 1e14 each plus the 1e14 fee; only the tools can take these sub-tasks (a
    # computed number never falls back to a language model), so the quote was exact
    assert charged == 3 * 10**14 == quoted
    assert [t["cost"] for t in trace["tasks"]] == [str(10**14), str(10**14)]
    assert cost["split"] == {"ftns:treasury": str(15 * 10**12), "local-operator": str(125 * 10**12),
                             "prsm-foundation": str(160 * 10**12)}  # fmt: skip
    assert ledger.balance("alice") == 10**18 - charged and ledger.balance("escrow:alice") == 0
    assert ledger.balance("prsm-foundation") == 160 * 10**12
    assert services.sessions.trace(trace["session_id"]) == trace  # the stored trace shows the same charge
    kinds = [e["kind"] for e in ledger.entries("alice")]
    assert kinds == ["hold", "mint"]  # the capture paid all of the hold out: nothing came back


def ledger_rows(db) -> tuple[int, int]:
    with db.orm() as s:
        return (
            s.scalar(select(func.count()).select_from(QuerySession)),
            s.scalar(select(func.count()).select_from(LedgerTransaction)),
        )


@pytest.mark.parametrize("user,available", [("bob", 0), ("poor", 10)])
def test_a_query_its_account_cannot_pay_is_refused_with_402_and_leaves_nothing(
    nwtn, services, db, user, available
):
    if available:
        services.ledger.open_account(user)
        services.ledger.mint(user, available, f"faucet-{user}")
    before = ledger_rows(db)
    with pytest.raises(InsufficientFunds) as info:
        asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", user))
    assert info.value.status_code == 402 and info.value.field == "account"
    assert info.value.available == available and info.value.needed > available
    assert info.value.to_dict()["needed"] == str(info.value.needed)
    assert ledger_rows(db) == before


def test_a_query_that_fails_releases_its_hold(nwtn, services, db):
    async def broken(model_id, kind, call):
        raise RuntimeError("replica down")

    nwtn.call = broken
    with pytest.raises(AllCandidatesFailed):
        asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    ledger = services.ledger
    assert ledger.balance("alice") == 10**18 and ledger.balance("escrow:alice") == 0
    assert [e["kind"] for e in ledger.entries("alice")] == ["release", "hold", "mint"]
    with db.orm() as s:
        session = s.scalars(select(QuerySession)).one()
        assert (session.status, session.charged, session.charge_split) == ("failed", 0, {})


def test_a_distilled_models_answer_pays_its_teachers_owner_a_royalty(nwtn, services, registry):
    student = ModelCard("sympy-student", "tool", "A distilled symbolic math tool", "carol", "MIT",
                        tags=("math",), price_per_call=10**13, endpoint="tool:math", teacher="sympy-cas")  # fmt: skip
    registry.register(student)

    async def only_the_student(task, open_circuits, route=None):  # routing is not under test here: pricing is
        return [Candidate("sympy-student", "tool", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 10**13)]

    nwtn.rank = only_the_student
    trace = asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    assert trace["tasks"][0]["model"] == "sympy-student" and trace["tasks"][0]["result"] == "9"
    split_ = {a: int(v) for a, v in trace["cost"]["split"].items()}
    assert split_["carol"] == 10**13 * 8000 // 10_000 * 9 // 10  # owner share less the royalty
    assert split_["prsm-foundation"] == 10**13 * 8000 // 10_000 // 10  # sympy-cas's owner
    assert services.ledger.balance("prsm-foundation") == split_["prsm-foundation"]


def test_a_student_card_must_name_a_registered_teacher(registry):
    bad = ModelCard(
        "orphan", "tool", "A distilled tool", "carol", "MIT", endpoint="tool:math", teacher="nope"
    )
    with pytest.raises(InvalidInput) as info:
        registry.register(bad)
    assert info.value.field == "teacher"


def test_the_hold_of_a_query_abandoned_mid_way_is_released_once(nwtn, services, db):
    from datetime import timedelta

    from prsm.db.models import utcnow

    async def never_answers(model_id, kind, call):
        # The orchestrator's process dies mid-query: nothing after this runs. (The query's task
        # is left pending in its loop, as in a dead process; at the interpreter's exit Python
        # may print "Task was destroyed but it is pending!" for this Orchestrator.query.)
        raise SystemExit

    nwtn.call = never_answers
    with pytest.raises(SystemExit):
        asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    ledger, release_abandoned = services.ledger, services.billing.release_abandoned
    assert ledger.balance("escrow:alice") > 0  # held, never captured nor released
    assert release_abandoned(60) == []  # too recent
    with db.orm.begin() as s:
        s.execute(QuerySession.__table__.update().values(created_at=utcnow() - timedelta(hours=1)))
    (session_id,) = release_abandoned(60)
    assert release_abandoned(60) == []
    assert ledger.balance("escrow:alice") == 0 and ledger.balance("alice") == 10**18
    with db.orm() as s:
        assert s.get(QuerySession, session_id).status == "failed"


def test_a_client_that_goes_away_cancels_its_query_and_its_hold_is_released_at_once(nwtn, services):
    """Cancelling the query (what Serve does when the HTTP client disconnects) cancels the model
    calls in flight and releases the hold in the same moment; the session ends failed."""
    calls_cancelled = []

    async def slow(model_id, kind, call):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            calls_cancelled.append(model_id)
            raise

    nwtn.call = slow

    async def scenario():
        query = asyncio.ensure_future(nwtn.query("Integrate x^2 from 0 to 3. Convert 2 km to m.", "alice"))
        await asyncio.sleep(0.5)
        assert services.ledger.balance("escrow:alice") > 0
        query.cancel()
        with pytest.raises(asyncio.CancelledError):
            await query

    asyncio.run(scenario())
    assert len(calls_cancelled) == 2
    assert services.ledger.balance("escrow:alice") == 0 and services.ledger.balance("alice") == 10**18
    assert services.billing.release_abandoned(0) == []  # nothing left running


def test_every_model_call_ends_within_the_query_deadline(nwtn, services):
    nwtn.settings = nwtn.settings.model_copy(update={"query_deadline_s": 0.5})

    async def hangs(model_id, kind, call):
        await asyncio.sleep(30)

    nwtn.call = hangs
    import time

    started = time.monotonic()
    with pytest.raises(AllCandidatesFailed, match="deadline"):
        asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    assert time.monotonic() - started < 3
    assert services.ledger.balance("escrow:alice") == 0 and services.ledger.balance("alice") == 10**18


def test_a_call_slow_to_take_its_cancellation_does_not_hold_the_deadline(nwtn, services):
    """A replica deep in a long forward pass answers a cancellation only when the pass ends; the
    query and a chat completion answer at their deadline all the same, not when the call gives up."""
    nwtn.settings = nwtn.settings.model_copy(update={"query_deadline_s": 0.5})

    async def stuck(model_id, kind, call):
        await asyncio.shield(asyncio.sleep(4))  # the cancellation lands only after 4 s
        return ModelOutput("too late", 1, 1)

    nwtn.call = stuck
    import time

    started = time.monotonic()
    with pytest.raises(AllCandidatesFailed, match="deadline"):
        asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice"))
    with pytest.raises(ModelCallFailed, match="no answer within 0.5 s"):
        asyncio.run(nwtn.complete(DEFAULT_MODEL_ID, [{"role": "user", "content": "hi"}], 8, None, "alice"))
    assert time.monotonic() - started < 3
    assert services.ledger.balance("escrow:alice") == 0 and services.ledger.balance("alice") == 10**18


def test_a_deadline_that_passes_before_a_sub_task_starts_is_no_refusal_and_no_mark_on_a_model(nwtn, services):
    """Planning and ranking took the whole deadline: the sub-task's candidates were never called.
    That is a deadline failure (not the prompt's fault) and counts against no model."""
    nwtn.settings = nwtn.settings.model_copy(update={"query_deadline_s": 0.2})
    rank = nwtn.rank

    async def slow_rank(*args):
        await asyncio.sleep(0.4)
        return await rank(*args)

    nwtn.rank = slow_rank
    calls_before = {c.id: c.calls for c in services.registry.list()}
    with pytest.raises(AllCandidatesFailed, match="deadline passed first"):
        asyncio.run(nwtn.query("Integrate x^2 from 0 to 3", "alice"))
    assert {c.id: c.calls for c in services.registry.list()} == calls_before
    assert services.ledger.balance("escrow:alice") == 0 and services.ledger.balance("alice") == 10**18


def test_a_full_model_queue_is_a_503_to_try_again_with_no_mark_on_the_model(nwtn, services, models):
    """Serve refuses a call past the LM deployment's max_queued_requests (BackPressureError):
    the query answers Overloaded (503, Retry-After), pays nothing, and the model's record and
    breaker are untouched: load is not the model's failure."""
    from functools import partial

    from prsm.errors import Overloaded
    from prsm.nwtn.remote import ModelClient
    from prsm.registry import DEFAULT_MODEL_ID

    class BackPressureError(Exception):  # Ray Serve's, by name (prsm/nwtn/remote.py)
        pass

    async def queue_full(call):
        raise BackPressureError(
            "Request dropped due to backpressure (num_queued_requests=32, max_queued_requests=32)."
        )

    nwtn.call = ModelClient(heavy=lambda m: queue_full, light=lambda m: partial(models.run_many, m))
    before = services.registry.get(DEFAULT_MODEL_ID)
    for _ in range(3):  # as many as would open a failing model's breaker
        with pytest.raises(Overloaded) as info:
            asyncio.run(nwtn.query("In one sentence, what is entropy?", "alice"))
    assert info.value.status_code == 503 and info.value.retry_after_s > 0
    after = services.registry.get(DEFAULT_MODEL_ID)
    assert (after.calls, after.failures) == (before.calls, before.failures)
    assert DEFAULT_MODEL_ID not in nwtn.breaker.open_ids()
    assert services.ledger.balance("escrow:alice") == 0 and services.ledger.balance("alice") == 10**18
    with pytest.raises(Overloaded):  # a direct completion likewise
        asyncio.run(nwtn.complete(DEFAULT_MODEL_ID, [{"role": "user", "content": "hi"}], 8, None, "alice"))
    assert services.ledger.balance("escrow:alice") == 0
