"""Tool calls in worker processes with CPU, memory and wall-clock limits: an overrun is stopped,
fails alone with a clear error, and the other calls go on."""

import asyncio
import time

import pytest

from prsm.backends.sandbox import Limits, Sandbox
from prsm.errors import ModelCallFailed

LIMITS = Limits(cpu_s=1, memory_bytes=768 * 1024**2, wall_s=4.0, workers=2, output_chars=1000)


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox.shared(LIMITS)


def run(sandbox, function: str, argument: str = ""):
    return asyncio.run(sandbox.run(f"tests.sandbox_targets:{function}", argument))


def test_a_call_answers_from_a_worker(sandbox):
    assert run(sandbox, "echo", "hello") == "hello"


@pytest.mark.parametrize(
    "function,argument,words",
    [
        ("spin", "", "CPU time"),
        ("nap", "30", "4 s limit"),
        ("hog", str(4 * 1024**3), "MiB"),
        ("flood", "5000", "at most 1000 characters"),
        ("crash", "boom", "ValueError: boom"),
    ],
)
def test_an_overrun_is_stopped_with_a_clear_error_and_the_sandbox_answers_at_once(
    sandbox, function, argument, words
):
    started = time.monotonic()
    with pytest.raises(ModelCallFailed, match=words):
        run(sandbox, function, argument)
    assert time.monotonic() - started < 6
    answered = time.monotonic()
    assert run(sandbox, "echo", "still here") == "still here"
    assert time.monotonic() - answered < 1.0


def test_a_hung_call_does_not_hold_up_the_others(sandbox):
    async def scenario():
        hung = asyncio.ensure_future(sandbox.run("tests.sandbox_targets:nap", "30"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        answers = [await sandbox.run("tests.sandbox_targets:echo", str(i)) for i in range(5)]
        took = time.monotonic() - started
        with pytest.raises(ModelCallFailed):
            await hung
        return answers, took

    answers, took = asyncio.run(scenario())
    assert answers == [str(i) for i in range(5)] and took < 1.0


def test_the_tools_reject_their_bombs_before_computing_and_the_sandbox_holds_the_rest():
    from prsm.backends.math_tool import solve_math
    from prsm.backends.units_tool import convert_units

    for bomb, tool in (("evaluate 9^9^9", solve_math), ("evaluate factorial(10^10)", solve_math),
                       ("convert 9^9^9 m to km", convert_units)):  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ModelCallFailed):
            tool(bomb)
        assert time.monotonic() - started < 0.5
