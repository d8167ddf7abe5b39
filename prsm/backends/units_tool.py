"""Exact unit conversion and physical constants (Pint): the `tool:units` specialist.

Understands "convert 42 km to miles", "3.5 feet in metres", "how many seconds are in 2 days",
"what is the speed of light in km/s", "50 degrees Fahrenheit in Celsius", "a temperature rise of
10 degC in degF". The output is the converted quantity, e.g. "26.09759007 mile", so a later
sub-task can convert it further.

Temperatures are offset units: 50 degF is 10 degC, but a *difference* of 50 degF is 27.8 degC
(delta units). A temperature is read as a point on its scale unless the text calls it a
difference, change, rise, drop, increase, decrease or interval; then the target scale is taken
as a delta too, and the answer says so ("18 delta_degree_Fahrenheit").
"""

from __future__ import annotations

import re
from functools import lru_cache

import pint

from prsm.errors import BadInstruction

_PATTERNS = (
    re.compile(r"^how\s+many\s+(?P<unit>.+?)\s+(?:are\s+|is\s+)?(?:in|per)\s+(?P<qty>.+)$", re.I),
    re.compile(r"^how\s+many\s+(?P<unit>.+?)\s+(?:is|are|equals?|makes?)\s+(?P<qty>.+)$", re.I),
    re.compile(
        r"^what\s+(?:temperature|length|distance|mass|weight|volume|speed|time)\s+in\s+(?P<unit>.+?)\s+"
        r"(?:is|are|equals?)\s+(?P<qty>.+)$",
        re.I,
    ),
    re.compile(r"^(?:what\s+is\s+|express\s+)?(?P<qty>.+?)\s+(?:in|to|into|as)\s+(?P<unit>[^,]+)$", re.I),
)
_LEADING = re.compile(r"^(?:please\s+)?(?:convert\s+|give\s+)?(?:the\s+value\s+of\s+)?(?:the\s+)?", re.I)


# Spoken temperature scales -> Pint's names. "degrees Fahrenheit" would otherwise be parsed as
# an angle times a temperature. A bare "F" or "C" is a farad or a coulomb, unless it stands
# after a degree word or sign.
_SCALES = (
    ("degF", r"(?:°|º|\bdeg(?:ree)?s?\.?\s*)\s*(?:fahrenheit\b|f\b)|\bfahrenheit\b"),
    ("degC", r"(?:°|º|\bdeg(?:ree)?s?\.?\s*)\s*(?:celsius\b|centigrade\b|c\b)|\b(?:celsius|centigrade)\b"),
    ("degRe", r"(?:°|º|\bdeg(?:ree)?s?\.?\s*)\s*(?:r[ée]aumur\b|re\b)|\br[ée]aumur\b"),
    ("degR", r"(?:°|º|\bdeg(?:ree)?s?\.?\s*)\s*(?:rankine\b|r\b)|\brankine\b"),
    ("kelvin", r"(?:°|º|\bdeg(?:ree)?s?\.?\s*)\s*(?:kelvins?\b|k\b)|\bkelvins\b"),
)
_SCALE_PATTERNS = tuple((name, re.compile(pattern, re.I)) for name, pattern in _SCALES)
_DELTA_WORDS = re.compile(r"\b(?:difference|change|rise|drop|increase|decrease|interval|delta)\b", re.I)
_DELTA_PHRASE = re.compile(
    r"^(?:an?\s+|the\s+)?(?:temperature\s+)?(?:difference|change|rise|drop|increase|decrease|interval)"
    r"\s+(?:of\s+)?",
    re.I,
)
_BARE_SCALE = re.compile(r"^(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(?P<scale>[CFKR])$")


def _scales(text: str) -> str:
    for name, pattern in _SCALE_PATTERNS:
        text = pattern.sub(f" {name} ", text)
    return " ".join(text.split())


_NUMBER = re.compile(r"^(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(?P<unit>[^\d].*)$", re.I)

# Pint evaluates the arithmetic in a quantity ("9^9^9 m" would compute for ever): sizes are
# checked on the text first. Units need small exponents (m^3, s^-2), quantities modest numbers.
MAX_CHARS = 200
MAX_DIGITS = 50
MAX_EXPONENT = 12
_POWER = re.compile(r"(?:\^|\*\*)\s*\(?\s*[-+]?\s*(\d+(?:\.\d*)?)")
_POWER_OF_POWER = re.compile(r"(?:\^|\*\*)[^a-z\s]*?(?:\^|\*\*)", re.I)
_DIGITS = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")
_BIG_E = re.compile(r"\d[eE][-+]?(\d+)")


def _check_sizes(text: str) -> None:
    if len(text) > MAX_CHARS:
        raise BadInstruction(f"an instruction over {MAX_CHARS} characters", "instruction")
    if _DIGITS.search(text):
        raise BadInstruction(f"a number over {MAX_DIGITS} digits", "instruction")
    if _POWER_OF_POWER.search(text) or any(float(p) > MAX_EXPONENT for p in _POWER.findall(text)):
        raise BadInstruction(
            f"units take exponents up to {MAX_EXPONENT}, not powers of powers", "instruction"
        )
    if any(int(e) > 300 for e in _BIG_E.findall(text)):
        raise BadInstruction("a number past 1e300", "instruction")


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry()


_MIXED = re.compile(
    r"^(?P<a>\d+(?:\.\d+)?)\s*(?P<ua>[A-Za-z]+)\s+(?:and\s+)?(?P<b>\d+(?:\.\d+)?)\s*(?P<ub>[A-Za-z]+)$"
)


def _quantity(text: str) -> pint.Quantity:
    ureg = registry()
    text = re.sub(r"^(?:an?|one)\s+(?=[a-z])", "1 ", _LEADING.sub("", text.strip()), flags=re.I)
    mixed = _MIXED.match(text)
    if mixed:  # "5 feet 10 inches", "1 hour and 30 minutes": one quantity in two units of its kind
        try:
            first = ureg.Quantity(float(mixed["a"]), _unit(mixed["ua"]))
            second = ureg.Quantity(float(mixed["b"]), _unit(mixed["ub"]))
            if (
                first.dimensionality == second.dimensionality
                and first.dimensionality != ureg.kelvin.dimensionality
            ):
                return first + second.to(first.units)
        except BadInstruction:
            pass
    number = _NUMBER.match(text)
    if number:  # "100 degF": offset units must be built from magnitude and unit, not parsed
        try:
            return ureg.Quantity(float(number["value"]), _unit(number["unit"]))
        except BadInstruction:
            pass
    for candidate in (text, re.sub(r"\s+", "_", text.lower())):
        try:
            value = ureg.Quantity(candidate)
        except Exception:  # Pint raises several error types for unknown names
            continue
        if isinstance(value, pint.Quantity):
            return value
    raise BadInstruction(f"not a quantity or constant Pint knows: {text!r}", "instruction")


def _unit(text: str) -> pint.Unit:
    ureg = registry()
    cleaned = text.strip().rstrip("?!. ")
    for candidate in (cleaned, cleaned.lower(), re.sub(r"\s+", "_", cleaned.lower())):
        try:
            return ureg.Unit(candidate)
        except Exception:
            try:  # plurals ("miles") are parsed as quantities by Pint
                return ureg.Quantity(1, candidate).units
            except Exception:
                continue
    raise BadInstruction(f"not a unit Pint knows: {cleaned!r}", "instruction")


def _temperature_unit(text: str) -> str | None:
    """Pint's name when `text` is a lone temperature scale ("degF", "C", "kelvin")."""
    bare = {"c": "degC", "f": "degF", "k": "kelvin", "r": "degR"}.get(text.strip().lower())
    return bare or (text.strip() if text.strip() in ("degF", "degC", "degRe", "degR", "kelvin") else None)


def as_delta(quantity: pint.Quantity) -> pint.Quantity:
    """A temperature as a difference: an offset scale's delta unit (Kelvin and Rankine already
    are differences); any other quantity as it is."""
    name = _DELTA_BY_UNIT.get(str(quantity.units))
    return registry().Quantity(quantity.magnitude, name) if name else quantity


def _delta_unit(unit: pint.Unit) -> pint.Unit:
    name = _DELTA_BY_UNIT.get(str(unit))
    return registry().Unit(name) if name else unit


_DELTA_BY_UNIT = {
    "degree_Fahrenheit": "delta_degF", "degree_Celsius": "delta_degC", "degree_Reaumur": "delta_degRe",
}  # fmt: skip


@BadInstruction.refusing("Pint")
def convert_units(instruction: str) -> str:
    text = instruction.strip().rstrip("?!. ")
    _check_sizes(text)
    text = _LEADING.sub("", _scales(text))
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if match:
            qty_text, target = match["qty"].strip(), match["unit"].strip().rstrip("?!. ")
            delta = bool(_DELTA_WORDS.search(text[: match.start("qty")] + qty_text))
            qty_text = _DELTA_PHRASE.sub("", qty_text)
            bare_pair = _BARE_SCALE.match(qty_text)
            if bare_pair and _temperature_unit(target) and len(target) == 1:  # "25 C to F"
                qty_text = f"{bare_pair['value']} {_temperature_unit(bare_pair['scale'])}"
            quantity = _quantity(qty_text)
            temperature = quantity.dimensionality == registry().kelvin.dimensionality
            bare = _temperature_unit(target) if temperature else None
            unit = registry().Unit(bare) if bare else _unit(target)
            if temperature and delta:  # both sides are differences
                quantity, unit = as_delta(quantity), _delta_unit(unit)
            try:
                converted = quantity.to(unit)
            except pint.DimensionalityError as exc:
                raise BadInstruction(str(exc), "instruction") from exc
            magnitude = converted.magnitude
            if temperature and abs(magnitude) < 1e-9:  # 491.67 degR is 0 degC, not 5.7e-14
                magnitude = 0.0
            return f"{magnitude:.10g} {converted.units}"
    raise BadInstruction("say what to convert into what: 'convert 3 km to miles'", "instruction")


@BadInstruction.refusing("Pint")
def quantity_arithmetic(expression: str) -> str:
    """Arithmetic on a quantity with its unit, as an earlier result hands it on: "(10/100)*6.2
    mile" is 0.62 mile. Pint reads the expression with its own tokenizer (nothing is eval'd),
    after the same size checks as a conversion."""
    text = _scales(expression.strip())
    _check_sizes(text)
    value = registry().parse_expression(text)
    if not isinstance(value, pint.Quantity):
        raise BadInstruction(f"not a quantity: {expression!r}", "instruction")
    return f"{value.magnitude:.10g} {value.units}"
