"""Planning: a prompt becomes a TaskPlan, a DAG of sub-tasks, each with a capability.

Two planners. The deterministic one needs no model: it splits multi-part questions, spots math
and unit-conversion requests, and links "then" / "using that" clauses to the sub-task before.
The LLM planner asks a configured model for schema-constrained JSON; whatever fails the schema or
the limits is rejected and the deterministic plan is used instead.

A sub-task refers to an earlier result with a `{t1}` placeholder; the orchestrator fills it in.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache

from pydantic import BaseModel, Field, ValidationError

from prsm.backends.formulas import compound, formulas, looks_like_formula
from prsm.backends.wording import looks_like_math, trim_end
from prsm.errors import PlanRejected
from prsm.types import PLACEHOLDER, PLAN_SCHEMA_NAME, Capability, SubTask, TaskPlan

log = logging.getLogger(__name__)


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
#
# A prompt is split into parts (numbered items, else sentences), each part into clauses: at
# "then" (the clause uses the one before), at "also" / ";" (independent), and at "and" or a comma
# followed by a verb ("convert 3 km to miles and explain why ..."). Each clause goes to the exact
# tool that can read it (prsm/backends/wording.py says what the math tool reads), else to a
# general model. Clauses a split made that are both general are joined again: a language model
# answers "explain how X and why Y" better whole.

_UNITS = re.compile(
    r"^(?:please\s+)?(?:convert|express|change)\s+.+\s+(?:to|into|in|as)\s+\S+"
    r"|^how\s+many\s+\S+.*\s+(?:are\s+|is\s+)?in\s+(?:[\d.]+|an?|one)\s*\S+"
    r"|^how\s+many\s+\S+(?:\s+\S+)?\s+(?:is|are|equals?|makes?)\s+[-+]?[\d.]+\s*\S+"
    r"|^(?:what\s+is\s+|what's\s+)?(?:an?\s+(?:temperature\s+)?(?:difference|change|rise|drop)\s+of\s+)?"
    r"[-+]?[\d.]+(?:e[-+]?\d+)?\s*[a-z°º/^*\d\s]+?\s+(?:in|to|into)\s+[a-z°º/^*\d\s]+$"
    r"|^what\s+is\s+the\s+(?:speed\s+of\s+light|gravitational\s+constant|planck\s+constant|"
    r"boltzmann\s+constant|avogadro\s+constant|elementary\s+charge|electron\s+mass)\s+in\s+\S+"
    r"|^what\s+(?:temperature|length|distance|mass|weight|volume|speed|time)\s+in\s+\S+(?:\s+\S+)?\s+(?:is|are|equals?)"
    r"\s+[-+]?[\d.]+\s*\S+",  # "what temperature in Fahrenheit is 37 degrees Celsius"
    re.IGNORECASE,
)
# Phrases that point back at the previous sub-task's result.
# "that energy", "this speed": the earlier result with the name of its quantity, all of it one slot
_QUANTITY_NOUNS = (
    r"energy|speed|velocity|distance|length|mass|force|pressure|temperature|time|volume|area|"
    r"frequency|wavelength|power|current|voltage|charge|momentum|acceleration|amount|quantity|angle"
)
_BACK_REFERENCE = re.compile(
    r"\b(?:using\s+(?:that|this|the\s+result|the\s+answer)|the\s+(?:result|answer|value|solution)|"
    rf"that\s+(?:result|value|number|answer|{_QUANTITY_NOUNS})|this\s+(?:result|value|number|{_QUANTITY_NOUNS})|"
    r"that|this|it)\b",
    re.IGNORECASE,
)
# The same, but only the explicit ones: a general clause's "that" or "it" is usually its own.
_EXPLICIT_REFERENCE = re.compile(
    r"\b(?:using\s+(?:that|this|the\s+result|the\s+answer)|the\s+(?:result|answer|solution)\b|"
    r"(?:that|this)\s+(?:result|value|number|answer|amount))",
    re.IGNORECASE,
)
_THEN = re.compile(r"(?:,\s*|\s+)(?:and\s+)?then\s*,?\s+|;\s*then\s+", re.IGNORECASE)
_ALSO = re.compile(r"(?:,\s*|\s+)(?:and\s+)?also\s*,?\s+|;\s+", re.IGNORECASE)
_CLAUSE_VERBS = (
    r"convert|express|compute|calculate|find|determine|solve|differentiate|integrate|evaluate|"
    r"simplify|expand|factor|multiply|divide|add|subtract|explain|describe|define|compare|tell|"
    r"give|state|say|list|name|discuss|summari[sz]e|why|how|what|which|who|where|when|is|are|does|"
    r"do|estimate|work\s+out"
)
# A clause that asks or orders something on its own starts so; "If ...", "A spring ..." do not.
_ASKS = re.compile(
    rf"^(?:please\s+)?(?:{_CLAUSE_VERBS}|d/d[a-z]|differentiate|integrate|increase|decrease|"
    rf"take|square|double|halve|using|with\s+that|then|in\s+one\s+sentence)\b",
    re.I,
)
_AND_VERB = re.compile(rf"((?:,\s*(?:and\s+)?|\s+and\s+))(?=(?:{_CLAUSE_VERBS})\b)", re.IGNORECASE)
_LEADING_CONNECTIVE = re.compile(
    r"^(?:and\s+also|and|also|plus|additionally|next|finally|lastly|moreover|furthermore)\s*,?\s+", re.I
)
_NUMBERED = re.compile(r"(?:^|(?<=[\s:]))\(?(\d{1,2})[.)]\s+")
# A "!" after a number is a factorial ("What is 5! divided by 3!?"), a sentence's end only before
# a capital.
_SENTENCE_END = re.compile(
    r"(?<=\?)\s+|(?<=[^\d\s]!)\s+|(?<=\d!)\s+(?=[A-Z])|(?<=[a-z)\]}\d][.;])\s+(?=[A-Z(])"
    r"|(?<=[\d° a-z][A-Z][.;])\s+(?=[A-Z(])"  # after a unit's capital: "... to 80 °C. Explain ..."
)


_CONVERSION = re.compile(r"^(?:please\s+)?(?:convert|express|change)\b(?!.*\bof\b)", re.I)


# No tool reads a longer instruction (the formula tool's limit; math and units take less): a
# longer clause is a general model's, and reading it as mathematics would only cost CPU here.
MAX_TOOL_CLAUSE_CHARS = 600
# A part that splits into more clauses than this is not split further: the plan would be
# rejected for its size anyway, and splitting costs CPU in NWTN for every clause.
MAX_CLAUSES = 60


@lru_cache(maxsize=4096)  # a plan classifies each clause several times while it splits and links
def classify(instruction: str) -> Capability:
    try:
        return _classify(instruction)
    except Exception:  # a reading of words that fails is no 500: a general model gets the clause
        log.warning("classifying a clause failed; it goes to a general model", exc_info=True)
        return Capability.GENERAL


def _classify(instruction: str) -> Capability:
    text = trim_end(_LEADING_CONNECTIVE.sub("", instruction.strip()))
    if len(text) > MAX_TOOL_CLAUSE_CHARS:
        return Capability.GENERAL
    if _CONVERSION.match(text) and _UNITS.match(text):  # the common case, without the math reading
        return Capability.UNITS
    if looks_like_math(text):
        return Capability.MATH
    formula = looks_like_formula(text)
    if _UNITS.match(text) and not (
        formula and (compound(text) or re.search(r"\d\s*\S+\s+of\s+[A-Za-z]", text))
    ):
        return Capability.UNITS  # ... but "how many moles are in 18 g of water" needs a molar mass
    if formula:
        return Capability.FORMULA
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


def _clauses(part: str) -> list[tuple[str, str]]:
    """(how it joins the clause before: "then" | "also" | "and" | "", clause text)."""
    found: list[tuple[str, str]] = []
    pieces = re.split(f"({_THEN.pattern})", part, flags=re.I)  # text, "then", text, ...
    if len(pieces) > 2 * MAX_CLAUSES:
        pieces = [part]
    thens = [pieces[0]]
    for separator, text in zip(pieces[1::2], pieces[2::2], strict=True):
        if _ASKS.match(_clean(thens[-1])):
            thens.append(text)
        else:  # "If it rains, then the ground is wet": a condition, not a step
            thens[-1] += separator + text
    for i, then_clause in enumerate(thens):
        for j, also_clause in enumerate(_settings_joined(_ALSO.split(then_clause))):
            also_clause = _LEADING_CONNECTIVE.sub("", also_clause.strip())
            lead = re.match(
                r"^(?:using|with)\s+(?:that|this|the\s+result|the\s+answer)\s*,?\s*", also_clause, re.I
            )
            prefix = lead[0] if lead else ""
            pieces = _AND_VERB.split(also_clause[len(prefix) :])  # text, separator, text, ...
            if len(pieces) > 2 * MAX_CLAUSES:
                pieces = [also_clause[len(prefix) :]]
            pieces[0] = prefix + pieces[0]
            texts, separators = pieces[0::2], ["", *pieces[1::2]]
            # An "and" split between two general clauses is undone, with the words as they were:
            # one question for one model ("explain how X and why Y", "In one sentence, what ...").
            joined: list[tuple[str, str]] = []  # (separator before, text)
            for separator, text in zip(separators, texts, strict=True):
                if joined and (
                    _capability(_clean(joined[-1][1])) == _capability(_clean(text)) == Capability.GENERAL
                    or not _ASKS.match(_clean(joined[-1][1]))  # "If 80 g ... 4 years, how much ..."
                ):
                    joined[-1] = (joined[-1][0], joined[-1][1] + separator + text)
                else:
                    joined.append((separator, text))
            for k, (_, text) in enumerate(joined):
                clause = _clean(text)
                if clause:
                    found.append(("and" if k else "also" if j else "then" if i else "", clause))
    return found


def _settings_joined(clauses: list[str]) -> list[str]:
    """A clause that only states quantities ("A car travels 150 miles in 2.5 hours; what is its
    average speed?") stays with the question after it when a tool reads the two together."""
    return _joined(
        clauses,
        "; ",
        lambda last, clause: (
            classify(last) == Capability.GENERAL
            and classify(f"{last}; {_clean(clause)}") != Capability.GENERAL
        ),
    )


def _joined(pieces: list[str], separator: str, together: Callable[[str, str], bool]) -> list[str]:
    """`pieces` with each one that sets the scene (states quantities, asks nothing) joined to the
    piece after it when `together(setting, next piece)` says so."""
    joined: list[str] = []
    for piece in pieces:
        last = _clean(joined[-1]) if joined else ""
        if (
            last
            and not last.endswith("?")
            and not _ASKS.match(last)
            and re.search(r"\d", last)
            and not _EXPLAINS.match(_clean(piece))  # "... to 80 °C. Explain what heat is.": two parts
            and together(last, piece)
        ):
            joined[-1] = f"{joined[-1]}{separator}{piece}"
        else:
            joined.append(piece)
    return joined


def _clean(clause: str) -> str:
    return _LEADING_CONNECTIVE.sub("", clause.strip(" ,;"))


_MISSING_OPERAND = (  # "then multiply by 3": the earlier result is the operand left out
    (re.compile(r"^(?:to|into)\s+(?=\S)", re.I), "convert {t0} to "),  # "... to kelvin, then to degF"
    (re.compile(r"^(multiply|divide)\s+by\s+", re.I), r"\1 {t0} by "),
    (re.compile(r"^add\s+(?!.*\b(?:to|and)\b)", re.I), "add {t0} and "),
    (re.compile(r"^subtract\s+(?!.*\bfrom\b)(.+)$", re.I), r"subtract \1 from {t0}"),
    (re.compile(r"^(square|cube|double|triple|halve)\s*$", re.I), r"\1 {t0}"),
    (re.compile(r"^(?:take\s+)?(?:the\s+)?square\s+root\s*$", re.I), "the square root of {t0}"),
    (
        re.compile(
            r"^(evaluate|differentiate|integrate|simplify|expand|factor)\s+(?=(?:at|with|where|from|for|wrt)\b)",
            re.I,
        ),
        r"\1 {t0} ",
    ),
)


def _refers_back(clause: str, then: bool = False) -> str | None:
    """The clause with its reference to an earlier result made a `{t0}` slot, if it makes one
    that an exact tool can then read; else None. `then`: the clause follows "then", so an
    operand it leaves out is the earlier result."""
    stripped = re.sub(r"^using\s+(?:that|this|the\s+result|the\s+answer)\s*,?\s*", "", clause, flags=re.I)
    replaced, count = _BACK_REFERENCE.subn("{t0}", stripped, count=1)
    if not count and (then or stripped != clause):
        body = stripped.rstrip("?!. ")
        for pattern, replacement in _MISSING_OPERAND:
            if replacement and pattern.match(body):
                replaced, count = pattern.sub(replacement, body, count=1), 1
                break
        else:
            if stripped != clause:  # "using that, evaluate at x = 2"
                replaced, count = f"{stripped} {{t0}}", 1
    if count and classify(replaced.replace("{t0}", "(t0)")) != Capability.GENERAL:
        return replaced
    return None


def _capability(clause: str) -> Capability:
    """The clause's capability, counting a reference to an earlier result as a value."""
    capability = classify(clause)
    if capability == Capability.GENERAL:
        linked = _refers_back(clause, then=True)
        if linked is not None:
            return classify(linked.replace("{t0}", "(t0)"))
    return capability


_EXPLAINS = re.compile(r"^(?:please\s+)?(?:explain|why|describe|define|discuss|compare|summari[sz]e)\b", re.I)
# A question about what the sentence before it described: "... in 5 s. What is its acceleration?"
_ABOUT_IT = re.compile(r"\b(?:its?|this|that|these|they|their|the\s+same)\b", re.I)


def _names_a_quantity(question: str, text: str) -> bool:
    """The question names a variable of a formula the whole text calls for ("... at 30 degrees.
    What is the angle of refraction?")."""
    lowered, asked = text.lower(), question.lower()
    return any(
        re.search(rf"\b{re.escape(w)}\b", asked)
        for f in formulas()
        if f.called_for(lowered)
        for v in f.variables.values()
        for w in v.words
        if len(w) > 3
    )


def _with_givens(parts: list[str]) -> list[str]:
    """A sentence that only states quantities ("A spring of 200 N/m is stretched by 0.1 m.") is
    the setting of the question after it: the two are one part. So is one a tool could read on
    its own ("A car accelerates from 10 m/s to 30 m/s in 5 s.") when the question after it gives
    no number, asks about "it" or names a quantity, and a tool reads the two together."""
    return _joined(
        parts,
        " ",
        lambda last, part: (
            classify(last) == Capability.GENERAL
            or (
                not re.search(r"\d", part)
                and bool(_ABOUT_IT.search(part) or _names_a_quantity(part, f"{last} {part}"))
                and classify(f"{last} {_clean(part)}") != Capability.GENERAL
            )
        ),
    )


def plan_deterministic(prompt: str) -> TaskPlan:
    tasks: list[SubTask] = []
    for part in _with_givens(split_parts(prompt)):
        part_keys: list[str] = []  # this part's sub-tasks so far
        for joint, clause in _clauses(part):
            key = f"t{len(tasks) + 1}"
            previous = tasks[-1].key if tasks else None
            starts_back = bool(_STARTS_WITH_REFERENCE.match(clause))
            clause = _STARTS_WITH_THEN.sub("", clause)
            depends: tuple[str, ...] = ()
            capability = classify(clause)
            linked = _refers_back(clause, then=joint == "then" or starts_back) if previous else None
            if linked is not None:  # "multiply the result by 3": the tool gets the value
                capability = classify(linked.replace("{t0}", "(t0)"))
                clause, depends = linked.replace("{t0}", f"{{{previous}}}"), (previous,)
            elif previous and (joint == "then" or starts_back) and capability == Capability.GENERAL:
                depends = (previous,)
                clause = _link(clause, capability, previous)
            elif (
                previous
                and capability == Capability.GENERAL
                and (
                    _EXPLICIT_REFERENCE.search(clause)
                    or (
                        joint == "and"
                        and part_keys
                        and tasks[int(part_keys[-1][1:]) - 1].capability != Capability.GENERAL
                    )
                )
            ):
                # An explanation joined to a calculation sees the computed value.
                depends = (part_keys[-1] if part_keys else previous,)
                clause = _link(clause, capability, depends[0])
            tasks.append(SubTask(key=key, instruction=clause, capability=capability, depends_on=depends))
            part_keys.append(key)
    return TaskPlan(tasks=tuple(tasks), planner="deterministic")


def _link(instruction: str, capability: Capability, previous: str) -> str:
    """Make a dependent clause name the earlier result explicitly."""
    if capability != Capability.GENERAL:
        replaced, count = _BACK_REFERENCE.subn(f"{{{previous}}}", instruction, count=1)
        return replaced if count else f"{instruction} {{{previous}}}"
    return f"{instruction} (Earlier result: {{{previous}}})"


_STARTS_WITH_REFERENCE = re.compile(r"^(?:using\s+(?:that|this|the\s+result)|with\s+that|then)\b", re.I)
_STARTS_WITH_THEN = re.compile(r"^then\s*,?\s+", re.I)


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
        f"matching this JSON schema: {schema}. capability is math (symbolic math and arithmetic), "
        "units (unit conversion, physical constants), formula (a standard physics or chemistry "
        "formula applied to given quantities) or general. A sub-task may use an earlier result by "
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
