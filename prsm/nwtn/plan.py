"""Planning: a prompt becomes a TaskPlan, a DAG of sub-tasks, each with a capability.

Two planners. The deterministic one needs no model: it splits multi-part questions, spots math
and unit-conversion requests, and links "then" / "using that" clauses to the sub-task before.
The LLM planner asks a configured model for schema-constrained JSON; whatever fails the schema or
the limits is rejected and the deterministic plan is used instead.

A sub-task refers to an earlier result with a `{t1}` placeholder; the orchestrator fills it in.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field, ValidationError

from prsm.errors import PlanRejected
from prsm.types import PLACEHOLDER, PLAN_SCHEMA_NAME, Capability, SubTask, TaskPlan


def validate(plan: TaskPlan, max_tasks: int, max_depth: int) -> TaskPlan:
    """The plan itself if it is a DAG within the limits whose placeholders name dependencies."""
    if not plan.tasks:
        raise PlanRejected("the plan has no sub-tasks", "prompt")
    if len(plan.tasks) > max_tasks:
        raise PlanRejected(f"the plan has {len(plan.tasks)} sub-tasks; the limit is {max_tasks}", "prompt")
    seen: set[str] = set()
    for task in plan.tasks:
        if task.key in seen:
            raise PlanRejected(f"sub-task key {task.key!r} is used twice", "plan")
        if not task.instruction.strip():
            raise PlanRejected(f"sub-task {task.key} has no instruction", "plan")
        for dep in task.depends_on:
            if dep not in seen:  # also rules out cycles: dependencies come first
                raise PlanRejected(
                    f"sub-task {task.key} depends on {dep!r}, which does not come before it", "plan"
                )
        for ref in PLACEHOLDER.findall(task.instruction):
            if ref not in task.depends_on:
                raise PlanRejected(f"sub-task {task.key} uses {{{ref}}} without depending on it", "plan")
        seen.add(task.key)
    if plan.depth() > max_depth:
        raise PlanRejected(f"the plan is {plan.depth()} sub-tasks deep; the limit is {max_depth}", "prompt")
    return plan


# --- the deterministic planner ---------------------------------------------------------------

_MATH_VERB = re.compile(
    r"^(?:please\s+)?(?:find\s+|compute\s+|calculate\s+)?(?:the\s+)?"
    r"(differentiate|derivative\s+of|d/d[a-z]\b|integrate|integral\s+of|solve|simplify|expand|"
    r"factor|evaluate)\b",
    re.IGNORECASE,
)
_ARITHMETIC = re.compile(
    r"^(?:what\s+is|compute|calculate)\s+[-+*/^().\d\s]*\d[-+*/^().\d\s]*[-+*/^][-+*/^().\d\s]*\d[\s?]*$",
    re.IGNORECASE,
)
_UNITS = re.compile(
    r"^(?:please\s+)?convert\s+.+\s+(?:to|into|in)\s+\S+"
    r"|^how\s+many\s+\S+.*\s+(?:are\s+|is\s+)?in\s+[\d.]+\s*\S+"
    r"|^(?:what\s+is\s+)?[-+]?[\d.]+(?:e[-+]?\d+)?\s*[a-z°/^*\d\s]+?\s+(?:in|to)\s+[a-z°/^*\d\s]+$"
    r"|^what\s+is\s+the\s+(?:speed\s+of\s+light|gravitational\s+constant|planck\s+constant|"
    r"boltzmann\s+constant|avogadro\s+constant|elementary\s+charge|electron\s+mass)\s+in\s+\S+",
    re.IGNORECASE,
)
# Phrases that point back at the previous sub-task's result.
_BACK_REFERENCE = re.compile(
    r"\b(?:using\s+(?:that|this|the\s+result|the\s+answer)|the\s+result|the\s+answer|that|this|it)\b",
    re.IGNORECASE,
)
_THEN = re.compile(r"(?:,\s*|\s+)(?:and\s+)?then\s+|;\s*then\s+", re.IGNORECASE)
_NUMBERED = re.compile(r"(?:^|(?<=[\s:]))\(?(\d{1,2})[.)]\s+")
_SENTENCE_END = re.compile(r"(?<=[?!])\s+|(?<=[a-z)\]}\d][.;])\s+(?=[A-Z(])")


def classify(instruction: str) -> Capability:
    text = instruction.strip()
    if _MATH_VERB.match(text) or _ARITHMETIC.match(text):
        return Capability.MATH
    if _UNITS.match(text):
        return Capability.UNITS
    return Capability.GENERAL


def split_parts(prompt: str) -> list[str]:
    """Top-level parts of a prompt: numbered items, else sentences and questions."""
    text = " ".join(prompt.split())
    items = _numbered_items(text)
    if items:
        return items
    return [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]


def _numbered_items(text: str) -> list[str]:
    """Items of a list numbered 1, 2, 3, ... ("1." or "1)"); a lone "x = 1. " is no list."""
    markers, expected = [], 1
    for match in _NUMBERED.finditer(text):
        if int(match[1]) == expected:
            markers.append(match)
            expected += 1
    if len(markers) < 2:
        return []
    preamble = text[: markers[0].start()].strip()
    if preamble and not preamble.endswith(":"):
        return []
    bounds = [m.start() for m in markers[1:]] + [len(text)]
    return [text[m.end() : end].strip() for m, end in zip(markers, bounds, strict=True)]


def _link(instruction: str, capability: Capability, previous: str) -> str:
    """Make a dependent clause name the earlier result explicitly."""
    if capability != Capability.GENERAL:
        stripped = re.sub(r"^using\s+(?:that|this|the\s+result)\s*,?\s*", "", instruction, flags=re.I)
        replaced, count = _BACK_REFERENCE.subn(f"{{{previous}}}", stripped, count=1)
        return replaced if count else f"{stripped} {{{previous}}}"
    return f"{instruction} (Earlier result: {{{previous}}})"


def plan_deterministic(prompt: str) -> TaskPlan:
    tasks: list[SubTask] = []
    for part in split_parts(prompt):
        clauses = [c.strip(" ,;") for c in _THEN.split(part) if c.strip(" ,;")]
        previous: str | None = None
        for i, clause in enumerate(clauses):
            key = f"t{len(tasks) + 1}"
            capability = classify(clause)
            depends: tuple[str, ...] = ()
            refers_back = i > 0 or (previous is None and tasks and _starts_with_reference(clause))
            if refers_back:
                previous = previous or tasks[-1].key
                depends = (previous,)
                clause = _link(clause, capability, previous)
            tasks.append(SubTask(key=key, instruction=clause, capability=capability, depends_on=depends))
            previous = key
    return TaskPlan(tasks=tuple(tasks), planner="deterministic")


def _starts_with_reference(clause: str) -> bool:
    return bool(re.match(r"^(?:using\s+(?:that|this|the\s+result)|with\s+that|then)\b", clause, re.I))


# --- the LLM planner -------------------------------------------------------------------------


class TaskSpec(BaseModel):
    id: str = Field(pattern=r"^t\d{1,3}$")
    instruction: str = Field(min_length=1, max_length=2000)
    capability: Capability
    depends_on: list[str] = Field(default_factory=list)


class PlanSpec(BaseModel):
    tasks: list[TaskSpec] = Field(min_length=1, max_length=50)


def plan_response_format(max_tasks: int) -> dict:
    """OpenAI-style response_format asking for a plan; local models decode under it exactly
    (prsm/backends/guided.py), remote endpoints such as vLLM with their own guided decoding."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": PLAN_SCHEMA_NAME,
            "schema": PlanSpec.model_json_schema(),
            "strict": True,
            "max_tasks": max_tasks,
        },
    }


_EXAMPLE_QUESTION = "Differentiate x^2 sin(x), then evaluate that at x = 1. Why is the sky blue?"
_EXAMPLE_PLAN = json.dumps(
    {
        "tasks": [
            {"id": "t1", "instruction": "differentiate x^2 sin(x)", "capability": "math", "depends_on": []},
            {"id": "t2", "instruction": "evaluate {t1} at x = 1", "capability": "math", "depends_on": ["t1"]},
            {"id": "t3", "instruction": "Why is the sky blue?", "capability": "general", "depends_on": []},
        ]
    }
)


def llm_planner_messages(prompt: str) -> list[dict]:
    schema = json.dumps(PlanSpec.model_json_schema(), separators=(",", ":"))
    system = (
        "You split a question into sub-tasks. Answer with one JSON object and nothing else, "
        f"matching this JSON schema: {schema}. capability is math (symbolic math), units (unit "
        "conversion, physical constants) or general. A sub-task may use an earlier result by "
        "writing {t1} in its instruction and listing t1 in depends_on."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _EXAMPLE_QUESTION},
        {"role": "assistant", "content": _EXAMPLE_PLAN},
        {"role": "user", "content": prompt},
    ]


def plan_from_llm_output(text: str, max_tasks: int, max_depth: int) -> TaskPlan:
    """Parse and validate an LLM planner's output; raises PlanRejected when it does not hold."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise PlanRejected("the planner model returned no JSON object", "plan")
    try:
        spec = PlanSpec.model_validate_json(text[start : end + 1])
    except ValidationError as exc:
        raise PlanRejected(f"the planner model's JSON does not match the schema: {exc}", "plan") from exc
    tasks = tuple(SubTask(t.id, t.instruction, t.capability, tuple(t.depends_on)) for t in spec.tasks)
    return validate(TaskPlan(tasks, planner="llm"), max_tasks, max_depth)
