"""FTNS amounts: integers of base units (1 FTNS = 10^18), parsed and printed without floats."""

from __future__ import annotations

import re

from prsm.errors import InvalidInput

DECIMALS = 18
FTNS = 10**DECIMALS
MAX_AMOUNT = 2**256 - 1  # what the ERC-20 it settles on can hold
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def parse_ftns(text: str, field: str = "amount") -> int:
    """'1.5' FTNS -> 1_500_000_000_000_000_000 base units; refuses anything inexact or not positive."""
    cleaned = text.strip().removesuffix("FTNS").strip()
    if not _DECIMAL.match(cleaned):
        raise InvalidInput(f"{text!r} is not a positive decimal number of FTNS", field)
    whole, _, frac = cleaned.partition(".")
    if len(frac) > DECIMALS:
        raise InvalidInput(f"{text!r} has more than {DECIMALS} decimals (1 base unit = 10^-18 FTNS)", field)
    return check_amount(int(whole) * FTNS + int(frac.ljust(DECIMALS, "0") or 0), field)


def check_amount(value: object, field: str = "amount") -> int:
    """A positive integer of base units, or InvalidInput naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        else:
            raise InvalidInput(f"{value!r} is not an integer number of base units", field)
    if value <= 0:
        raise InvalidInput("the amount must be positive", field)
    if value > MAX_AMOUNT:
        raise InvalidInput("the amount is larger than any FTNS balance can be", field)
    return value


def format_ftns(base_units: int | str) -> str:
    """Exact decimal FTNS from integer base units (no float on the way)."""
    units = int(base_units)
    sign, units = ("-", -units) if units < 0 else ("", units)
    whole, frac = divmod(units, FTNS)
    return sign + f"{whole}.{frac:0{DECIMALS}d}".rstrip("0").rstrip(".") + " FTNS"
