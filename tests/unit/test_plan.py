import pytest

from prsm.errors import PlanRejected
from prsm.nwtn.plan import classify, plan_deterministic, plan_from_llm_output, validate
from prsm.types import SubTask, TaskPlan

DEMO = (
    "Differentiate x^3*sin(x) with respect to x, then evaluate that at x = 1. "
    "Convert 42 km to miles. In one sentence, what is entropy?"
)


def test_multi_part_question_becomes_one_sub_task_per_part_with_capabilities():
    plan = plan_deterministic(DEMO)
    assert [(t.key, t.capability) for t in plan.tasks] == [
        ("t1", "math"),
        ("t2", "math"),
        ("t3", "units"),
        ("t4", "general"),
    ]


def test_then_that_links_the_clause_to_the_previous_result():
    plan = plan_deterministic(DEMO)
    t2 = plan.get("t2")
    assert t2.depends_on == ("t1",)
    assert t2.instruction.startswith("evaluate {t1} at x = 1")
    assert plan.get("t3").depends_on == ()
    assert plan.depth() == 2


def test_numbered_list_items_are_parts_but_a_decimal_point_is_not():
    plan = plan_deterministic("1. Integrate x^2 from 0 to 1 2) How many seconds are in 2 days? 3. Why?")
    assert [t.capability for t in plan.tasks] == ["math", "units", "general"]
    single = plan_deterministic("Evaluate x^2 at x = 1. Then explain it.")
    assert len(single.tasks) == 2


def test_using_that_in_a_general_part_carries_the_earlier_result():
    plan = plan_deterministic("Solve x^2 - 4 = 0 for x. Using that, explain what a root is.")
    t2 = plan.get("t2")
    assert t2.capability == "general" and t2.depends_on == ("t1",)
    assert "{t1}" in t2.instruction


@pytest.mark.parametrize(
    "text,capability",
    [
        ("integrate exp(-x) from 0 to oo", "math"),
        ("What is 2 + 3*4?", "math"),
        ("convert 3 feet to meters", "units"),
        ("how many seconds are in 2 days", "units"),
        ("What is the speed of light in km/s?", "units"),
        ("What is photosynthesis?", "general"),
    ],
)
def test_classify(text, capability):
    assert classify(text) == capability


def test_plan_over_the_task_limit_is_rejected():
    prompt = " ".join(f"{i}. What is {i} + 1?" for i in range(1, 15))
    with pytest.raises(PlanRejected, match="14 sub-tasks; the limit is 12"):
        validate(plan_deterministic(prompt), max_tasks=12, max_depth=4)


def test_plan_over_the_depth_limit_is_rejected():
    prompt = "Convert 1 km to m, then convert that to feet, then convert that to inches, then convert that to mm, then convert that to km"
    plan = plan_deterministic(prompt)
    assert plan.depth() == 5
    with pytest.raises(PlanRejected, match="5 sub-tasks deep"):
        validate(plan, max_tasks=12, max_depth=4)


def test_a_dependency_on_a_later_task_is_rejected_so_no_cycle_can_pass():
    plan = TaskPlan(
        tasks=(SubTask("t1", "a {t2}", "general", ("t2",)), SubTask("t2", "b", "general", ("t1",))),
        planner="llm",
    )
    with pytest.raises(PlanRejected, match="does not come before it"):
        validate(plan, 12, 4)


def test_llm_plan_that_matches_the_schema_is_used():
    text = (
        'Sure! {"tasks": [{"id": "t1", "instruction": "integrate x^2", "capability": "math"},'
        ' {"id": "t2", "instruction": "explain {t1}", "capability": "general", "depends_on": ["t1"]}]}'
    )
    plan = plan_from_llm_output(text, 12, 4)
    assert plan.planner == "llm"
    assert plan.get("t2").depends_on == ("t1",)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("I cannot plan that.", "no JSON object"),
        ('{"tasks": [{"id": "t1", "instruction": "x", "capability": "poetry"}]}', "schema"),
        ('{"tasks": [{"id": "t1", "instruction": "use {t2}", "capability": "math"}]}', "without depending"),
    ],
)
def test_invalid_llm_plan_is_rejected(text, reason):
    with pytest.raises(PlanRejected, match=reason):
        plan_from_llm_output(text, 12, 4)


def shape(prompt: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(t.capability, t.instruction, t.depends_on) for t in plan_deterministic(prompt).tasks]


@pytest.mark.parametrize(
    "text,capability",
    [
        ("What is 12% of 350?", "math"),
        ("multiply 6 by 3", "math"),
        ("What is 7 times 8?", "math"),
        ("what is the square root of 144", "math"),
        ("Calculate the sum of 3 and 4", "math"),
        ("find x if 2x + 3 = 15", "math"),
        ("Find the derivative of x^3", "math"),
        ("the limit of sin(x)/x as x approaches 0", "math"),
        ("Convert 50 degrees Fahrenheit to Celsius.", "units"),
        ("What is 300 K in Celsius?", "units"),
        ("how many meters are in a mile", "units"),
        ("What is the capital of France?", "general"),
        ("what is entropy", "general"),
        ("What is the difference between mass and weight?", "general"),
    ],
)
def test_classify_reads_mathematics_written_in_words(text, capability):
    assert classify(text) == capability


def test_a_result_referred_to_in_words_reaches_the_next_tool_as_a_slot():
    assert shape("Solve 2x + 3 = 15 for x, then multiply the result by 3.") == [
        ("math", "Solve 2x + 3 = 15 for x", ()),
        ("math", "multiply {t1} by 3.", ("t1",)),
    ]
    # in the next sentence, and with the operand left out
    assert shape("Solve 3x = 12 for x. Then multiply by 5.")[1] == ("math", "multiply {t1} by 5", ("t1",))
    assert shape("Solve x = 2. Using that, multiply by 3.")[1] == ("math", "multiply {t1} by 3", ("t1",))
    assert shape("Convert 5 miles to km, then convert that to feet.")[1] == (
        "units",
        "convert {t1} to feet.",
        ("t1",),
    )


def test_a_second_clause_after_also_or_and_is_its_own_sub_task():
    assert shape("What is 12% of 350? Also convert 4 miles to kilometers.") == [
        ("math", "What is 12% of 350?", ()),
        ("units", "convert 4 miles to kilometers.", ()),
    ]
    assert [c for c, _, _ in shape("Convert 10 kg to pounds, and also what is 15% of 80? And explain what a pound is.")] == [
        "units", "math", "general"
    ]  # fmt: skip


def test_a_calculation_joined_to_an_explanation_is_split_and_the_explanation_sees_the_value():
    assert shape("Convert 3 km to miles and explain why the mile is longer.") == [
        ("units", "Convert 3 km to miles", ()),
        ("general", "explain why the mile is longer. (Earlier result: {t1})", ("t1",)),
    ]


def test_general_clauses_stay_whole_as_written():
    assert shape("Explain how rainbows form and why they are curved.") == [
        ("general", "Explain how rainbows form and why they are curved.", ())
    ]
    assert shape("In one sentence, what is entropy?") == [
        ("general", "In one sentence, what is entropy?", ())
    ]


def test_a_sentence_of_givens_joins_the_question_after_it():
    assert shape("A spring with a spring constant of 200 N/m is stretched by 0.1 m. What is the force?") == [
        (
            "formula",
            "A spring with a spring constant of 200 N/m is stretched by 0.1 m. What is the force?",
            (),
        )
    ]
    # a conditional clause is no ask of its own
    assert [c for c, _, _ in shape("If 80 g of a substance has a half-life of 4 years, how much is left after 12 years?")] == [
        "formula"
    ]  # fmt: skip


def test_a_clause_of_givens_before_a_semicolon_stays_with_its_question():
    assert shape("A car travels 150 miles in 2.5 hours; what is its average speed in km/h?") == [
        ("formula", "A car travels 150 miles in 2.5 hours; what is its average speed in km/h?", ())
    ]
    # two questions stay two
    assert [c for c, _, _ in shape("Convert 3 km to miles; why is the mile longer?")] == ["units", "general"]


def test_sentences_end_where_a_reader_ends_them():
    # a factorial's "!" ends no sentence; a unit's capital before a full stop does
    assert shape("What is 5! divided by 3!?") == [("math", "What is 5! divided by 3!?", ())]
    assert [c for c, _, _ in shape("Water is heated from 20 °C to 80 °C. Explain what heat is.")] == [
        "formula",
        "general",
    ]
    # a question about "it" after a sentence a tool could read alone is one part with it
    assert shape("A car accelerates from 10 m/s to 30 m/s in 5 s. What is its acceleration?") == [
        ("formula", "A car accelerates from 10 m/s to 30 m/s in 5 s. What is its acceleration?", ())
    ]


def test_that_with_the_name_of_a_quantity_is_one_slot():
    assert shape(
        "What is the energy of a photon with a wavelength of 400 nm? Convert that energy to eV."
    ) == [
        ("formula", "What is the energy of a photon with a wavelength of 400 nm?", ()),
        ("units", "Convert {t1} to eV.", ("t1",)),
    ]


def test_a_reading_of_words_that_fails_sends_the_clause_to_a_general_model(monkeypatch):
    import prsm.nwtn.plan as plan

    def broken(text):
        raise KeyError(text)

    monkeypatch.setattr(plan, "looks_like_math", broken)
    plan.classify.cache_clear()
    try:
        assert plan.classify("What is the sine of 30 degrees?") == "general"
    finally:
        plan.classify.cache_clear()


@pytest.mark.parametrize(
    "text,capability",
    [
        ("How many moles of CO2 are in 88 g?", "formula"),  # chemistry, not a conversion
        ("How many moles are in 18 g of water?", "formula"),
        ("What is the resistance of a circuit with 12 V and 2 A?", "formula"),
        ("What is the kinetic energy of a car?", "general"),  # no numbers: nothing to compute
        ("How many grams are in 3.5 pounds?", "units"),
        (
            "What's the escape velocity from the surface of the Earth?",
            "formula",
        ),  # the Earth's mass and radius
        ("What is the escape velocity of a planet?", "general"),  # nothing to compute with
        ("What is the area of a circle with a radius of 3 cm?", "formula"),
        ("What is the greatest common divisor of 48 and 180?", "math"),
        ("What is the remainder when 100 is divided by 7?", "math"),
    ],
)
def test_classify_sends_formula_questions_to_the_formula_tool(text, capability):
    assert classify(text) == capability


def test_a_condition_with_then_is_one_clause_not_two_steps():
    assert shape("If it rains, then the ground gets wet. Why?")[0] == (
        "general", "If it rains, then the ground gets wet.", ()
    )  # fmt: skip
    assert shape("If x + 5 = 12, then what is x?") == [("math", "If x + 5 = 12, then what is x?", ())]


def test_a_long_prompt_is_planned_in_bounded_time():
    import time

    for prompt in (
        "what is " + "5% of " * 1300,  # words the math reading would rewrite again and again
        " ".join(["convert 3 km to miles and explain"] * 200),  # hundreds of clauses in one part
        ", then ".join(["multiply 2 by 3"] * 400),
    ):
        started = time.perf_counter()
        plan_deterministic(prompt[:8000])
        assert time.perf_counter() - started < 0.5
