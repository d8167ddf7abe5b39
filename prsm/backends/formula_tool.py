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

import dataclasses
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
    asked: bool = False  # the question names the unknown (before its quantities, or in a question after them)
    ignored: tuple[Given, ...] = ()  # a quantity of a kind the formula has no variable for


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


def _plan(
    formula: Formula, text: str, given: list[Given], target: pint.Unit | None, may_ignore: bool = True
) -> Plan | str:
    """Which quantity is which variable; the unknown; or why the formula does not fit.

    `may_ignore`: one quantity with a unit of a kind no variable of the formula has (the mass
    in "a 2 kg stone falls from 10 m: how fast ...") is left out, said so in the answer, when
    the rest determine the formula; two such, or a quantity of a kind the formula has but no
    open variable for, and the formula does not fit."""
    lowered = text.lower()
    values: dict[str, pint.Quantity] = {}
    open_vars = dict(formula.variables)
    leftover = 0
    ignored: list[Given] = []
    delta = next((v for v in open_vars.values() if v.delta), None)
    temperatures = [g for g in given if g.quantity.dimensionality == registry().kelvin.dimensionality]
    span = re.search(r"\bfrom\s+(.+?)\s+to\s+(.+?)(?:[,;.?]|$)", text, re.I)
    if delta and len(temperatures) == 2 and span:  # "from 20 °C to 80 °C"
        low, high = (t.quantity.to("kelvin").magnitude for t in temperatures)
        values[delta.name] = registry().Quantity(abs(high - low), "kelvin")
        del open_vars[delta.name]
        given = [g for g in given if g not in temperatures]
    sought = _sought(formula, text, given)
    for g in given:
        fitting = [v for v in open_vars.values() if _fits(v, g.quantity)]
        if len(fitting) > 1 and sought in fitting:  # "... in 10 years. What is its half-life?"
            fitting.remove(sought)
        if not fitting:
            foreign = not g.quantity.dimensionless and not any(
                _fits(v, g.quantity) for v in formula.variables.values()
            )
            if foreign and may_ignore and not ignored:
                ignored.append(g)
            else:
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
            (v for v in list(open_vars.values())[1:] + list(open_vars.values())[:1] if v.default_in(lowered)),
            None,
        )
        if defaulted is None:
            missing = ", ".join(f"{v.name} ({v.words[0] if v.words else v.unit})" for v in open_vars.values())
            return f"{formula.name}: give a value for all but one of {missing}"
        values[defaulted.name] = registry().Quantity(defaulted.default_in(lowered))
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
    head = _CONDITION.split(head, 1)[0]
    asked = unknown is sought or any(re.search(rf"\b{re.escape(w)}\b", head) for w in unknown.words)
    if leftover or (ignored and len(ignored) == len(given)):
        return f"{formula.name}: {leftover or len(ignored)} of the question's quantities fit no variable"
    score = 3 * formula.called_for(text) + 2 * len(values) - 4 * len(ignored) + (4 if asked else 0)
    return Plan(formula, values, unknown, score, asked, tuple(ignored))


# Where a question's conditions begin: what it asks for is named before ("the magnification of a
# lens if the image distance is 15 cm" asks for no image distance).
_CONDITION = re.compile(r"\b(?:if|when|given|where|whose|provided)\b")
# Words the table uses to tell variables apart by where they stand ("a force of 10 N from ..."),
# which name no quantity a question asks for.
_NOT_NAMES = frozenset(
    ("from", "into", "with", "does", "make", "after", "within", "through", "where", "when", "that", "this",
     "than", "then", "over", "across", "along", "later", "moving", "first", "second", "other", "total",
     "equivalent", "combined", "net")
)  # fmt: skip
_QUESTION = re.compile(r"\b(?:what|how|find|calculate|compute|determine|which|estimate|where|when)\b", re.I)


def _asked_text(text: str, given: list[Given]) -> str | None:
    """Where a question names what it asks for: a question after its last quantity, else the
    words before its first (lower case); None without quantities."""
    if not given:
        return None
    tail = text[given[-1].end :]
    question = _QUESTION.search(tail)
    if question:
        return tail[question.start() :].lower()
    return _CONDITION.split(text[: given[0].start].lower(), 1)[0]  # "... of a lens if the image distance is"


def _sought(formula: Formula, text: str, given: list[Given]) -> Variable | None:
    """The variable the question asks for by name: after its last quantity when a question is put
    there ("A sample ... in 10 years. What is its half-life?"), else before its first; the one
    named first. Words of three letters or fewer (the "of", "in", "at" that tell variables apart
    by where they stand) name nothing here."""
    asked = _asked_text(text, given)
    if asked is None:
        return None
    named = []
    for v in formula.variables.values():
        at = [where for w in v.words if (where := _named_at(w, asked)) is not None]
        if at:
            named.append((min(at), v))
    return min(named, key=lambda n: n[0])[1] if named else None


def _named_at(word: str, asked: str) -> int | None:
    """Where `asked` names a quantity with the table's `word`; None if it does not, or if the
    word names no quantity by itself (three letters or fewer, or one of `_NOT_NAMES`)."""
    if len(word) <= 3 or word in _NOT_NAMES:
        return None
    found = re.search(rf"\b{re.escape(word)}\b", asked)
    return found.start() if found else None


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
    positive = sorted(v for v in real if v > 0)  # of several, the least (an angle of refraction under 90°)
    base = ureg.Quantity(1, plan.unknown.unit).to_base_units().units
    if not positive and _never_negative(plan.unknown) and any(v < 0 for v in real):
        raise BadInstruction(
            f"{f.name}: only a negative {plan.unknown.name} fits these numbers, and a "
            f"{plan.unknown.words[0] if plan.unknown.words else plan.unknown.name}{_NEVER_NEGATIVE}",
            "instruction",
        )
    return ureg.Quantity((positive or real)[0], base).to(plan.unknown.unit)


# Kinds of quantity this table only has magnitudes of: a time, a length, area or volume, a mass,
# an amount of substance, an absolute temperature. A negative one is a misread question.
_MAGNITUDES = ("[time]", "[length]", "[mass]", "[substance]", "[temperature]")
_NEVER_NEGATIVE = " is never negative"


def _never_negative(variable: Variable) -> bool:
    if variable.unit == "dimensionless" or variable.delta:
        return False
    if variable.unit in ("ohm", "farad", "hertz", "pascal", "kilogram / meter ** 3"):
        return True  # a resistance, capacitance, frequency, pressure or density
    dims = dict(_dimension(variable.unit).items())
    return len(dims) == 1 and next(iter(dims)) in _MAGNITUDES and next(iter(dims.values())) > 0


def _solve_either_way(plan: Plan) -> tuple[Plan, pint.Quantity]:
    """The plan's value; when only a negative magnitude fits and the question gave exactly two
    quantities of one kind ("25 g of a 100 g sample remain"), the other way round, if that
    gives a value that is not negative (the answer shows which quantity went where)."""
    try:
        return plan, _solve(plan)
    except BadInstruction as exc:
        if _NEVER_NEGATIVE not in str(exc):
            raise
        by_unit: dict[object, list[str]] = {}
        for name, q in plan.values.items():
            by_unit.setdefault(q.dimensionality, []).append(name)
        pairs = [names for names in by_unit.values() if len(names) == 2]
        if len(pairs) != 1:
            raise
        a, b = pairs[0]
        swapped = dataclasses.replace(plan, values=plan.values | {a: plan.values[b], b: plan.values[a]})
        return swapped, _solve(swapped)


_TARGET_INSIDE = re.compile(
    r"\b(?:in|into)\s+(?P<unit>[^\s,;?]+)\s+(?:of|for|from|needed|when|is|are|does|do|would|will|used|consumed|"
    r"produced|released|required|stored|gained|lost)\b",
    re.I,
)


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
    plain = q.dimensionless and str(q.units) == "dimensionless"  # an angle keeps its degree
    return f"{q.magnitude:.10g}" + ("" if plain else f" {q.units}")


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
    unitless = _unitless_geometry(scan, given, target, candidates)
    if unitless is not None:
        return unitless
    plans, reasons = [], []
    for formula in candidates:
        planned = _plan(formula, scan, given, target)
        (plans if isinstance(planned, Plan) else reasons).append(planned)
    best = max(plans, key=lambda p: p.score) if plans else None  # ties: the table's order
    # Formulas its words call for come first: one the question names but does not give enough for
    # is refused, not swapped for another ("the kinetic energy of a 2 kg mass" is no E = m*c^2),
    # and one that fits but gives another kind of quantity than the one asked is refused below
    # ("the frequency of a pendulum" is no c = f*l_w). Only a question no formula's words call for
    # is matched by its quantities and the quantity it asks for.
    if not candidates:
        best = _by_quantities(scan, given, target)
    body = _OTHER_BODY.search(lowered)
    if best is not None and body and _earthly(best):  # "the weight of 10 kg on the Moon" is no m*9.81
        raise BadInstruction(
            f"{best.formula.name} takes the Earth's gravity or mass; the question is about the {body[0]}",
            "instruction",
        )
    if best is not None and not best.asked:
        other = _asked_elsewhere(scan, given, best)
        if other:  # "the wavelength of an electron with 100 eV" is no speed from K = m*v^2/2
            raise BadInstruction(
                f"the question asks for {other}; {best.formula.name} gives {best.unknown.name}", "instruction"
            )
    if best is None:
        conversion = _conversion(given, target)
        if conversion is not None:
            return conversion
        if not candidates:
            raise BadInstruction("no formula in the table matches this question", "instruction")
        raise BadInstruction("; ".join(reasons[:3]), "instruction")
    best, result = _solve_either_way(best)
    result = result.to(target) if target is not None else _in_given_units(result, best)
    inputs = ", ".join(f"{name} = {_show(q)}" for name, q in best.values.items())
    unused = "".join(f"; not used: {g.text} (the formula takes no such quantity)" for g in best.ignored)
    return (
        f"{best.unknown.name} = {_show(result)} ({best.formula.name}: {best.formula.expression}, "
        f"with {inputs}{unused}; source: {best.formula.source})"
    )


# Bodies whose gravity is not the Earth's (Mercury is also an element, so it is not here).
_OTHER_BODY = re.compile(r"\b(?:moon|mars|jupiter|saturn|venus|neptune|uranus|pluto|sun|titan|europa)\b")


def _earthly(plan: Plan) -> bool:
    """The plan uses standard gravity or the Earth's mass or radius by default."""
    return "standard_gravity" in plan.formula.constants.values() or any(
        v.default_when == "earth" and v.name in plan.values for v in plan.formula.variables.values()
    )


def _asked_elsewhere(text: str, given: list[Given], plan: Plan) -> str | None:
    """The quantity the question asks for by name (the table's word for it named first in the
    question) when no variable that word names is of the plan's unknown's kind: then the plan
    answers another question ("the wavelength of ..." answered with a mass)."""
    asked = _asked_text(text, given)
    if asked is None:
        return None
    named: dict[str, tuple[int, set]] = {}  # word -> (where, the kinds of quantity it names)
    for f in formulas():
        for v in f.variables.values():
            for w in v.words:
                where = _named_at(w, asked)
                if where is not None:
                    named.setdefault(w, (where, set()))[1].add(_kind(v.unit))
    if not named:
        return None
    word = min(named, key=lambda w: named[w][0])
    return None if _kind(plan.unknown.unit) in named[word][1] else word


def _kind(unit: str) -> str:
    """The kind of quantity a table unit measures, comparable across units ("km" and "m")."""
    return "dimensionless" if unit == "dimensionless" else str(_dimension(unit))


def _geometric(formula: Formula) -> bool:
    """Every variable a length, an area or a volume."""
    meter = registry().meter.dimensionality
    return all(
        v.unit != "dimensionless" and any(_dimension(v.unit) == meter**k for k in (1, 2, 3))
        for v in formula.variables.values()
    )


def _unitless_geometry(
    text: str, given: list[Given], target: pint.Unit | None, candidates: list[Formula]
) -> str | None:
    """A geometry question in plain numbers ("the hypotenuse of a right triangle with sides 5
    and 12"): its numbers are lengths in one unspoken unit, the answer a number in that unit
    (squared for an area, cubed for a volume)."""
    shapes = [f for f in candidates if _geometric(f)]
    if target is not None or not given or not shapes or not all(g.quantity.dimensionless for g in given):
        return None
    lengths = [
        dataclasses.replace(g, quantity=registry().Quantity(g.quantity.magnitude, "meter")) for g in given
    ]
    plans = [p for f in shapes if isinstance(p := _plan(f, text, lengths, None, may_ignore=False), Plan)]
    if not plans:
        return None
    best, result = _solve_either_way(max(plans, key=lambda p: p.score))
    power = next(k for k in (1, 2, 3) if result.dimensionality == registry().meter.dimensionality ** k)
    value = result.to(registry().meter ** power).magnitude
    inputs = ", ".join(f"{name} = {q.magnitude:.10g}" for name, q in best.values.items())
    kind = {1: "a length in", 2: "an area, in the square of", 3: "a volume, in the cube of"}[power]
    return (
        f"{best.unknown.name} = {value:.10g} ({best.formula.name}: {best.formula.expression}, with {inputs}; "
        f"{kind} the question's unit of length; source: {best.formula.source})"
    )


def _by_quantities(text: str, given: list[Given], target: pint.Unit | None) -> Plan | None:
    """For a question no formula's words call for: the one formula whose unknown the question
    names and whose other variables its quantities fill, every one used. Two formulas that fit
    as well: none (no guess)."""
    if not given:
        return None
    fits = []
    for formula in formulas():
        planned = _plan(formula, text, given, target, may_ignore=False)
        if isinstance(planned, Plan) and planned.asked:
            fits.append(planned)
    if not fits:
        return None
    top = max(p.score for p in fits)
    best = [p for p in fits if p.score == top]
    return best[0] if len(best) == 1 else None


def _conversion(given: list[Given], target: pint.Unit | None) -> str | None:
    """A question that gives one quantity and asks for it in another unit of its kind ("how much
    energy in joules is 2.5 kWh") is a conversion, whatever words it uses."""
    if target is None or len(given) != 1 or given[0].quantity.dimensionless:
        return None
    quantity = given[0].quantity
    if quantity.dimensionality != target.dimensionality:
        return None
    if quantity.units.is_compatible_with(registry().kelvin) and not str(quantity.units).startswith("delta"):
        return None  # a temperature: the units tool's (offset scales), not converted here
    return f"{_show(quantity.to(target))} ({given[0].text} in {target}: a conversion, no formula needed)"


def _in_given_units(result: pint.Quantity, plan: Plan) -> pint.Quantity:
    """The answer in the unit the question gave its own quantities of that kind in, when it gave
    them all in one unit and asked for none: a half-life in years from "after 10 years", a
    distance in km from "at 60 km/h", an area in cm^2 from "a radius of 3 cm". A variable the
    table gives its own unit (a wavelength in nm, an energy in eV) keeps it."""
    ureg = registry()
    if ureg.Quantity(1, plan.unknown.unit).to_base_units().magnitude != 1:
        if result.dimensionality == ureg.meter.dimensionality and not 1e-3 <= abs(result.magnitude) < 1e6:
            return result.to("meter")  # a radio wave's 3 m, not 3e9 nm
        return result
    units = {}  # unit name -> its dimensionality, from every given quantity's own unit parts
    for q in plan.values.values():
        for name, _ in q.unit_items():
            units[name] = ureg.Unit(name).dimensionality
    for power in (1, 2, 3):
        found = {name for name, dims in units.items() if dims**power == result.dimensionality}
        if len(found) == 1:
            return result.to(ureg.Unit(next(iter(found))) ** power)
        if found:
            return result
    return result
