"""Exact unit conversion and physical constants (Pint): the `tool:units` specialist.

Understands "convert 42 km to miles", "3.5 feet in metres", "how many seconds are in 2 days",
"what is the speed of light in km/s". The output is the converted quantity, e.g. "26.09759007 mile",
so a later sub-task can convert it further.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pint

from prsm.errors import BadInstruction

_PATTERNS = (
    re.compile(r"^how\s+many\s+(?P<unit>.+?)\s+(?:are\s+|is\s+)?(?:in|per)\s+(?P<qty>.+)$", re.I),
    re.compile(r"^(?:what\s+is\s+|express\s+)?(?P<qty>.+?)\s+(?:in|to|into|as)\s+(?P<unit>[^,]+)$", re.I),
)
_LEADING = re.compile(r"^(?:please\s+)?(?:convert\s+|give\s+)?(?:the\s+value\s+of\s+)?(?:the\s+)?", re.I)


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


def _quantity(text: str) -> pint.Quantity:
    ureg = registry()
    text = _LEADING.sub("", text.strip())
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


@BadInstruction.refusing("Pint")
def convert_units(instruction: str) -> str:
    text = instruction.strip().rstrip("?!. ")
    _check_sizes(text)
    text = _LEADING.sub("", text)
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if match:
            quantity, unit = _quantity(match["qty"]), _unit(match["unit"])
            try:
                converted = quantity.to(unit)
            except pint.DimensionalityError as exc:
                raise BadInstruction(str(exc), "instruction") from exc
            return f"{converted.magnitude:.10g} {converted.units}"
    raise BadInstruction("say what to convert into what: 'convert 3 km to miles'", "instruction")
