import pytest

from prsm.backends.math_tool import solve_math
from prsm.backends.units_tool import convert_units
from prsm.errors import ModelCallFailed


@pytest.mark.parametrize(
    "instruction,answer",
    [
        ("differentiate x^3 sin(x) with respect to x", "x**3*cos(x) + 3*x**2*sin(x)"),
        ("d/dx x^2", "2*x"),
        ("integrate x^2 from 0 to 1", "1/3"),
        ("integrate exp(-x) from 0 to oo", "1"),
        ("integrate 2*x", "x**2"),
        ("solve x^2 - 4 = 0 for x", "x = -2, x = 2"),
        ("simplify sin(x)^2 + cos(x)^2", "1"),
        ("factor x^2 - 1", "(x - 1)*(x + 1)"),
        ("evaluate x**3*cos(x) + 3*x**2*sin(x) at x = 1.", "3.06471526029"),
        ("what is 2^10", "1024"),
    ],
)
def test_math_tool_answers_exactly(instruction, answer):
    assert solve_math(instruction) == answer


@pytest.mark.parametrize(
    "instruction",
    [
        "evaluate __import__('os').system('true')",
        "evaluate x.__class__",
        "simplify (1).real",
        "write me a poem",
        "differentiate x*y",  # two variables and none named
    ],
)
def test_math_tool_refuses_what_is_not_safe_plain_math(instruction):
    with pytest.raises(ModelCallFailed):
        solve_math(instruction)


@pytest.mark.parametrize(
    "instruction,answer",
    [
        ("convert 42 km to miles", "26.09759007 mile"),
        ("3.5 feet in metres", "1.0668 meter"),
        ("how many seconds are in 2 days", "172800 second"),
        ("What is the speed of light in km/s?", "299792.458 kilometer / second"),
        ("convert 100 degF to degC", "37.77777778 degree_Celsius"),
    ],
)
def test_units_tool_converts(instruction, answer):
    assert convert_units(instruction) == answer


def test_units_tool_refuses_incompatible_dimensions():
    with pytest.raises(ModelCallFailed, match="Cannot convert"):
        convert_units("convert 3 kg to meters")


def test_a_tool_refuses_a_response_format():
    import asyncio

    from prsm.backends.tools import tool_backend
    from prsm.types import ModelCall

    call = ModelCall(({"role": "user", "content": "integrate x"},), 8, {"type": "json_schema"})
    with pytest.raises(ModelCallFailed, match="response_format"):
        asyncio.run(tool_backend("tool:math").run(call))
