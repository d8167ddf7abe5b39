import asyncio
from functools import partial

import pytest

from prsm.nwtn.compile import compile_answer
from prsm.nwtn.execute import CircuitBreaker, execute
from prsm.nwtn.plan import plan_deterministic
from prsm.nwtn.remote import ModelClient, RouterClient
from prsm.nwtn.route import MarketPolicy, Router
from prsm.types import ModelCall, ModelCard, ModelOutput


@pytest.fixture
def wiring(registry, embedder, models):
    # new cards compete on their score on every sub-task here (the fallback tests register some)
    router = Router(registry, embedder, refresh_s=0, policy=MarketPolicy(new_card_share=1.0))
    rank = RouterClient(lambda requests: asyncio.to_thread(router.rank_many, [r[:3] for r in requests]))
    call = ModelClient(heavy=lambda m: partial(models.run, m), light=lambda m: partial(models.run_many, m))
    return rank, call


def run(plan, rank, call, breaker=None):
    return asyncio.run(execute(plan, rank, call, breaker or CircuitBreaker(), max_new_tokens=16))


def test_dependent_sub_task_receives_the_earlier_result(wiring):
    plan = plan_deterministic("Differentiate x^2 with respect to x, then evaluate that at x = 3")
    outcomes = run(plan, *wiring)
    assert outcomes["t2"].instruction == "evaluate 2*x at x = 3"
    assert outcomes["t2"].result == "6"
    assert outcomes["t2"].model_id == "sympy-cas"


def test_independent_sub_tasks_run_concurrently(wiring):
    rank, call = wiring
    running, peak = 0, 0

    async def counting_call(model_id, kind, model_call: ModelCall):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        try:
            return await call(model_id, kind, model_call)
        finally:
            running -= 1

    plan = plan_deterministic("1. integrate x 2. convert 1 km to m 3. integrate x^2")
    outcomes = run(plan, rank, counting_call)
    assert peak == 3
    assert all(o.status == "done" for o in outcomes.values())


def test_a_failing_candidate_gives_way_to_the_next(wiring, registry):
    # A real OpenAI-compatible card whose endpoint is refused (loopback, not allowed by the
    # operator); cheaper, so it ranks first.
    registry.register(
        ModelCard(
            id="dead-endpoint",
            kind="openai",
            description="Exact symbolic mathematics: differentiate, integrate, solve.",
            owner="mallory",
            licence="MIT",
            tags=("math",),
            endpoint="http://127.0.0.1:9/v1",
        )
    )
    plan = plan_deterministic("integrate 2*x")
    outcome = run(plan, *wiring)["t1"]
    assert outcome.ranking[0]["model_id"] == "dead-endpoint"
    assert [a.ok for a in outcome.attempts] == [False, True]
    assert "127.0.0.1 is not on the public internet" in outcome.attempts[0].error  # unwrapped
    assert outcome.model_id == "sympy-cas" and outcome.result == "x**2"


def test_when_every_candidate_fails_the_task_fails_and_its_dependants_are_skipped(wiring):
    plan = plan_deterministic("convert 3 kg to meters, then convert that to feet")
    rank, call = wiring

    async def rank_tools_only(task, open_circuits):
        return [c for c in await rank(task, open_circuits) if c.kind == "tool"]

    outcomes = run(plan, rank_tools_only, call)
    assert outcomes["t1"].status == "failed" and "Cannot convert" in outcomes["t1"].error
    assert outcomes["t2"].status == "skipped"
    assert compile_answer(outcomes).status == "failed"


def test_circuit_opens_after_consecutive_failures_and_closes_after_cooldown():
    breaker = CircuitBreaker(threshold=2, cooldown_s=0.05)
    breaker.record("m", ok=False)
    assert "m" not in breaker.open_ids()
    breaker.record("m", ok=False)
    assert "m" in breaker.open_ids()
    asyncio.run(asyncio.sleep(0.06))
    assert "m" not in breaker.open_ids()


def test_a_call_whose_replica_died_is_tried_once_more():
    """Serve raises ActorDiedError when the replica serving a call is killed: the call goes once
    more (to another replica, or the one Serve starts in its place); other errors do not."""

    class ActorDiedError(Exception):
        pass

    tries = []

    async def dies_once(call):
        tries.append(call)
        if len(tries) == 1:
            raise ActorDiedError("the actor died unexpectedly")
        return ModelOutput("fine", 1, 1)

    client = ModelClient(heavy=lambda m: dies_once, light=lambda m: None)
    call_args = ModelCall(({"role": "user", "content": "x"},), 4)
    assert asyncio.run(client("lm", "transformers", call_args)).text == "fine" and len(tries) == 2

    async def always_bad(call):
        tries.append(call)
        raise ValueError("bad")

    tries.clear()
    client = ModelClient(heavy=lambda m: always_bad, light=lambda m: None)
    with pytest.raises(Exception, match="bad"):
        asyncio.run(client("lm", "transformers", call_args))
    assert len(tries) == 1


def test_an_earlier_result_reaches_a_tool_as_a_value_and_a_model_as_text():
    from prsm.nwtn.execute import fill, value_of

    assert value_of("x = 6") == "6"
    assert value_of("26.09759007 mile") == "26.09759007 mile"  # a quantity keeps its unit
    assert value_of("x = -2, x = 2") == "x = -2, x = 2"  # several: left for the tool to refuse
    assert fill("multiply {t1} by 3", {"t1": "x = 6"}, as_values=True) == "multiply 6 by 3"
    assert fill("explain (Earlier result: {t1})", {"t1": "x = 6"}) == "explain (Earlier result: x = 6)"


def test_numbers_from_a_language_model_are_marked_unverified_in_the_answer():
    from prsm.nwtn.compile import UNVERIFIED, compile_answer, verified
    from prsm.nwtn.execute import TaskOutcome
    from prsm.types import ModelKind, SubTask, TaskStatus

    def done(key, kind, result):
        return TaskOutcome(SubTask(key, "q", "general"), "q", TaskStatus.DONE, "m", kind, result)

    outcomes = {
        "t1": done("t1", ModelKind.TOOL, "42"),
        "t2": done("t2", ModelKind.TRANSFORMERS, "about 6.4 km"),
        "t3": done("t3", ModelKind.OPENAI, "because light scatters"),
    }
    answer = compile_answer(outcomes).answer.splitlines()
    assert answer[1].strip() == "42"
    assert answer[3].strip() == f"about 6.4 km {UNVERIFIED}"
    assert answer[5].strip() == "because light scatters"
    assert [verified(o.kind, o.result) for o in outcomes.values()] == [True, False, None]
