"""Standard formulas of physics and chemistry, evaluated exactly: the `tool:formulas` specialist.

"What is the kinetic energy of a 2 kg mass moving at 3 m/s?" -> "K = 9 joule (kinetic energy:
K = m*v^2/2, with m = 2 kilogram, v = 3 meter / second; source: ...)". The question's quantities
(numbers with units, read by Pint) go to the variables of their dimension in the formula its words
call for (formulas.toml); the one variable left is solved for with SymPy, in SI units, with the
SI constants Pint knows; the answer is in the unit the question asks for ("... in eV") or the
variable's own. A compound named by formula or common name ("18 g of H2O", "water") gives its
molar mass from standard atomic weights.

Nothing is guessed: a question that leaves two variables open, gives a quantity no variable of
the formula takes, or matches no formula is refused with the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import pint
import sympy

from prsm.backends.formulas import Formula, Variable, compound, formulas, molar_mass
from prsm.backends.math_tool import parse
from prsm.backends.units_tool import _scales, _unit, as_delta, registry
from prsm.backends.wording import NUMBER
from prsm.errors import BadInstruction

MAX_CHARS = 600

# "6.0 × 10^24", "1.5 x 10^-3", "3e8": a number, maybe in scientific notation.
_SCI = rf"{NUMBER}(?:\s*(?:×|x|\*)\s*10\s*(?:\^|\*\*)\s*[-+]?\d+)?"
_NUMBER_AT = re.compile(rf"(?<![\w.^]){_SCI}")
# Words Pint knows as units that, after a number, are ordinary English ("5 at", "2 in a row");
# case counts: "2 A" is two amperes, "a" an article.
_NOT_UNITS = frozenset(
    ["a", "an", "and", "are", "as", "at", "by", "do", "for", "from", "has", "if", "in", "is", "it", "its", "of", "on", "or", "per", "the", "then", "to", "was", "with", "what", "which", "how", "much", "many", "moving", "falling", "each"]
)  # fmt: skip
_TARGET = re.compile(
    r"\b(?:in|into|as|expressed\s+in)\s+(?P<unit>[^\s,;?]+(?:\s*/\s*[^\s,;?]+)?)\s*[?.!]*\s*$", re.I
)


@dataclass
class Given:
    quantity: pint.Quantity
    start: int  # where in the question it stands
    end: int
    text: str


def _number(text: str) -> float:
    mantissa, _, exponent = re.sub(r"\s+", "", text).replace("×", "x").partition("x10")
    if exponent:
        power = int(exponent.lstrip("^").lstrip("*"))
        value = float(mantissa) * 10.0**power if abs(power) <= 300 else math.inf
    else:
        value = float(text.replace("**", "^").replace(" ", ""))
    if not math.isfinite(value) or abs(value) > 1e300:
        raise BadInstruction(f"a number past 1e300: {text!r}", "instruction")
    return value


def quantities(text: str) -> list[Given]:
    """Every number in the question, with the longest unit after it that Pint reads (up to three
    words), or none (a plain number)."""
    ureg = registry()
    found = []
    for match in _NUMBER_AT.finditer(text):
        value = _number(match[0])
        rest = text[match.end() :]
        words = re.findall(r"\s*([^\s,;?!()]+(?:\([^\s()]*\))?)", rest[:60])
        quantity, end = ureg.Quantity(value), match.end()
        for n in range(min(3, len(words)), 0, -1):
            if words[0] in _NOT_UNITS or not re.match(r"^[^\d]", words[0]):
                break
            unit = _unit_of(words[:n])
            if unit is None:
                continue
            quantity = ureg.Quantity(value, unit)
            end = match.end() + len(re.match(r"\s*" + r"\s*".join(map(re.escape, words[:n])), rest)[0])
            break
        found.append(Given(quantity, match.start(), end, text[match.start() : end]))
    return found


def _unit_of(words: list[str]) -> pint.Unit | None:
    """The unit these words name: one token ("kg", "m/s^2", "°C"), or several that Pint knows as
    one name ("light year", "degrees Celsius", "square meters"); never a product of English
    words ("kg mass" is not kilogram times milliarcsecond)."""
    text = _scales(" ".join(words).rstrip("."))
    text = {"AU": "astronomical_unit", "au": "astronomical_unit", "ly": "light_year"}.get(
        text, text
    )  # Pint: AU is absorbance
    if len(words) > 1 and " " in text:
        first = text.split()[0].lower()
        if first not in ("square", "cubic", "sq"):
            try:
                return registry().Unit("_".join(text.lower().split()))
            except Exception:  # Pint raises several error types for unknown names
                try:
                    return registry().Quantity(1, "_".join(text.lower().split()).rstrip("s")).units
                except Exception:
                    return None
    try:
        unit = _unit(text)
    except BadInstruction:
        return None
    return None if str(unit) == "dimensionless" else unit


@dataclass
class Plan:
    formula: Formula
    values: dict[str, pint.Quantity]  # known variables, in their own units
    unknown: Variable
    score: float


def _dimension(unit: str) -> object:
    return registry().Quantity(1, unit).dimensionality


def _fits(variable: Variable, quantity: pint.Quantity) -> bool:
    if variable.unit == "dimensionless":
        return quantity.dimensionless
    return quantity.dimensionality == _dimension(variable.unit)


def _distance(text: str, given: Given, variable: Variable) -> float:
    """How close the question names the variable to the quantity: a word just before it
    ("a half-life of 5 years") counts over one after it ("5 years ... after")."""
    before, after = (
        text[max(0, given.start - 40) : given.start].lower(),
        text[given.end : given.end + 25].lower(),
    )
    best = float("inf")
    for word in variable.words:
        at = before.rfind(word)
        if at >= 0:
            best = min(best, len(before) - at - len(word))
        at = after.find(word)
        if at >= 0:
            best = min(best, at + 15)
    return best


def _plan(formula: Formula, text: str, given: list[Given], target: pint.Unit | None) -> Plan | str:
    """Which quantity is which variable; the unknown; or why the formula does not fit."""
    lowered = text.lower()
    values: dict[str, pint.Quantity] = {}
    open_vars = dict(formula.variables)
    leftover = 0
    delta = next((v for v in open_vars.values() if v.delta), None)
    temperatures = [g for g in given if g.quantity.dimensionality == registry().kelvin.dimensionality]
    span = re.search(r"\bfrom\s+(.+?)\s+to\s+(.+?)(?:[,;.?]|$)", text, re.I)
    if delta and len(temperatures) == 2 and span:  # "from 20 °C to 80 °C"
        low, high = (t.quantity.to("kelvin").magnitude for t in temperatures)
        values[delta.name] = registry().Quantity(abs(high - low), "kelvin")
        del open_vars[delta.name]
        given = [g for g in given if g not in temperatures]
    for g in given:
        fitting = [v for v in open_vars.values() if _fits(v, g.quantity)]
        if not fitting:
            leftover += 1
            continue
        chosen = min(fitting, key=lambda v: _distance(text, g, v))  # ties: the table's order
        values[chosen.name] = as_delta(g.quantity) if chosen.delta else g.quantity
        del open_vars[chosen.name]
    for g in given:  # "two 1000 kg masses", "charges of 2 uC each": one quantity, two variables
        before, after = text[max(0, g.start - 30) : g.start], text[g.end : g.end + 12]
        if re.search(r"\b(?:two|both|each)\b[^.,;]{0,20}$", before, re.I) or re.match(
            r"\s*each\b", after, re.I
        ):
            twin = next((v for v in open_vars.values() if _fits(v, g.quantity)), None)
            if twin is not None:
                values[twin.name] = as_delta(g.quantity) if twin.delta else g.quantity
                del open_vars[twin.name]
    chemical = compound(text)
    for v in list(open_vars.values()):
        if v.unit in ("gram / mole", "kilogram / mole") and chemical:
            values[v.name] = registry().Quantity(molar_mass(chemical), "gram / mole")
            del open_vars[v.name]
    if target is not None and len(open_vars) > 1:
        aimed = [
            v
            for v in open_vars.values()
            if v.unit != "dimensionless" and _dimension(v.unit) == target.dimensionality
        ]
        if len(aimed) == 1:
            open_vars = {
                aimed[0].name: aimed[0],
                **{k: v for k, v in open_vars.items() if k != aimed[0].name},
            }
    while len(open_vars) > 1:  # the rest must have defaults (water's specific heat, an electron's mass)
        defaulted = next(
            (
                v
                for v in list(open_vars.values())[1:] + list(open_vars.values())[:1]
                if v.default and (v.default_when is None or v.default_when in lowered)
            ),
            None,
        )
        if defaulted is None:
            missing = ", ".join(f"{v.name} ({v.words[0] if v.words else v.unit})" for v in open_vars.values())
            return f"{formula.name}: give a value for all but one of {missing}"
        values[defaulted.name] = registry().Quantity(defaulted.default)
        del open_vars[defaulted.name]
    if not open_vars:
        return f"{formula.name}: every variable is given; nothing is left to compute"
    unknown = next(iter(open_vars.values()))
    if (
        target is not None
        and unknown.unit != "dimensionless"
        and target.dimensionality != _dimension(unknown.unit)
    ):
        return f"{formula.name} gives {unknown.name} in {unknown.unit}, not in {target}"
    head = lowered[: given[0].start] if given else lowered  # "what is the energy stored in ..."
    asked = any(re.search(rf"\b{re.escape(w)}\b", head) for w in unknown.words)
    score = 3 * formula.called_for(text) + 2 * len(values) - 4 * leftover + (4 if asked else 0)
    if leftover:
        return f"{formula.name}: {leftover} of the question's quantities fit no variable"
    return Plan(formula, values, unknown, score)


def _si(quantity: pint.Quantity) -> sympy.Float:
    return sympy.Float(repr(float(quantity.to_base_units().magnitude)), 30)


@lru_cache(maxsize=256)
def _solved(formula_id: str, unknown: str) -> tuple[sympy.Expr, ...]:
    """The formula solved for `unknown`, symbolically (once): numbers go in afterwards."""
    f = next(f for f in formulas() if f.id == formula_id)
    names = frozenset(f.variables) | frozenset(f.constants)
    left, _, right = f.expression.partition("=")
    return tuple(sympy.solve(sympy.Eq(parse(left, names), parse(right, names)), sympy.Symbol(unknown)))


def _solve(plan: Plan) -> pint.Quantity:
    ureg = registry()
    f = plan.formula
    subs = {sympy.Symbol(name): _si(q) for name, q in plan.values.items()}
    subs |= {sympy.Symbol(name): _si(ureg.Quantity(1, const)) for name, const in f.constants.items()}
    values = []
    for solution in _solved(f.id, plan.unknown.name):
        try:
            values.append(complex(solution.evalf(20, subs=subs)))
        except (TypeError, ZeroDivisionError, OverflowError):  # zoo, nan: no value at these inputs
            continue
    real = [v.real for v in values if abs(v.imag) <= 1e-12 * max(1.0, abs(v.real)) and math.isfinite(v.real)]
    if not real:
        raise BadInstruction(
            f"{f.name}: no real, finite value of {plan.unknown.name} fits these numbers", "instruction"
        )
    positive = [v for v in real if v > 0]
    base = ureg.Quantity(1, plan.unknown.unit).to_base_units().units
    return ureg.Quantity((positive or real)[0], base).to(plan.unknown.unit)


_TARGET_INSIDE = re.compile(r"\b(?:in|into)\s+(?P<unit>[^\s,;?]+)\s+(?:of|for|from|needed|when)\b", re.I)


def _target(text: str) -> pint.Unit | None:
    """The unit the question wants its answer in: "... in eV?", "the energy in kJ of ..."."""
    for match in (_TARGET.search(text), _TARGET_INSIDE.search(text)):
        if match and not re.match(r"^[-+]?\d", match["unit"]):
            try:
                return _unit(_scales(match["unit"]))
            except BadInstruction:
                continue
    return None


def _show(q: pint.Quantity) -> str:
    return f"{q.magnitude:.10g}" + ("" if q.dimensionless else f" {q.units}")


@BadInstruction.refusing("the formula tool")
def answer_formula(instruction: str) -> str:
    text = " ".join(instruction.split())
    if len(text) > MAX_CHARS:
        raise BadInstruction(f"a question over {MAX_CHARS} characters", "instruction")
    lowered = text.lower()
    chemical = compound(text)
    if (
        re.search(r"\bmolar mass\b", lowered)
        and chemical
        and not re.search(r"\bmoles?\b.*\b(?:in|of)\b", lowered)
    ):
        return f"M = {molar_mass(chemical):.10g} gram / mole (molar mass of {chemical} from IUPAC standard atomic weights)"
    target = _target(text)
    end = _TARGET.search(text)
    scan = text[: end.start()] if target is not None and end and _target(text[end.start() :]) else text
    given = quantities(scan)
    candidates = [f for f in formulas() if f.called_for(lowered)]
    if not candidates:
        raise BadInstruction("no formula in the table matches this question", "instruction")
    plans, reasons = [], []
    for formula in candidates:
        planned = _plan(formula, scan, given, target)
        (plans if isinstance(planned, Plan) else reasons).append(planned)
    if not plans:
        raise BadInstruction("; ".join(reasons[:3]), "instruction")
    best = max(plans, key=lambda p: p.score)  # ties: the table's order
    result = _solve(best)
    if target is not None:
        result = result.to(target)
    inputs = ", ".join(f"{name} = {_show(q)}" for name, q in best.values.items())
    return (
        f"{best.unknown.name} = {_show(result)} ({best.formula.name}: {best.formula.expression}, "
        f"with {inputs}; source: {best.formula.source})"
    )
