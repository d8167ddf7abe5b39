"""The formula table (formulas.toml) and which of its formulas a question's words call for.

Free of Pint and SymPy, so the planner (in NWTN) asks `looks_like_formula` without loading
either; the formula tool (formula_tool.py) evaluates what is matched here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prsm.backends.wording import NUMBER
from prsm.errors import BadInstruction

TABLE = Path(__file__).with_name("formulas.toml")


@dataclass(frozen=True)
class Variable:
    name: str
    unit: str  # a Pint unit: the dimension, and the unit an answer is given in by default
    words: tuple[str, ...]  # what a question calls it
    default: str | None = None  # a quantity used when the question gives none ("1000 kg/m^3")
    default_when: str | None = None  # ... only when the question says this ("water")
    delta: bool = False  # a temperature difference, not a temperature
    others: tuple[tuple[str, str], ...] = ()  # more (word, value) defaults: ("proton", "1.67e-27 kg")

    def default_in(self, lowered: str) -> str | None:
        """The value this variable takes when a question (lower case) gives none, if it has one."""
        for word, value in self.others:
            if re.search(rf"\b{re.escape(word)}\b", lowered):
                return value
        if self.default and (
            self.default_when is None or re.search(rf"\b{re.escape(self.default_when)}\b", lowered)
        ):
            return self.default
        return None


@dataclass(frozen=True)
class Formula:
    id: str
    name: str
    expression: str  # "lhs = rhs"
    words: tuple[tuple[re.Pattern, ...], ...]  # alternatives; every pattern of one must match
    source: str
    variables: dict[str, Variable]
    constants: dict[str, str]  # name -> Pint constant or unit

    def called_for(self, text: str) -> int:
        """How many phrases of its best-matching word alternative `text` has (0: none matches)."""
        return max((len(alt) for alt in self.words if all(p.search(text) for p in alt)), default=0)


@lru_cache(maxsize=1)
def formulas() -> tuple[Formula, ...]:
    data = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    table = []
    for f in data["formula"]:
        variables = {
            name: Variable(
                name,
                v["unit"],
                tuple(v.get("words", ())),
                v.get("default"),
                v.get("default_when"),
                v.get("delta", False),
                tuple(v.get("others", {}).items()),
            )
            for name, v in f["variables"].items()
        }
        words = tuple(tuple(re.compile(rf"\b(?:{w})", re.I) for w in alt) for alt in f["words"])
        table.append(
            Formula(
                f["id"], f["name"], f["expression"], words, f["source"], variables, f.get("constants", {})
            )
        )
    return tuple(table)


# IUPAC CIAAW abridged standard atomic weights (2021), for molar masses.
ATOMIC_WEIGHTS = {
    "H": 1.008, "He": 4.0026, "Li": 6.94, "Be": 9.0122, "B": 10.81, "C": 12.011, "N": 14.007,
    "O": 15.999, "F": 18.998, "Ne": 20.180, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.085,
    "P": 30.974, "S": 32.06, "Cl": 35.45, "Ar": 39.95, "K": 39.098, "Ca": 40.078, "Ti": 47.867,
    "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Cu": 63.546, "Zn": 65.38,
    "Br": 79.904, "Kr": 83.798, "Ag": 107.87, "Sn": 118.71, "I": 126.90, "Xe": 131.29, "Ba": 137.33,
    "Pt": 195.08, "Au": 196.97, "Hg": 200.59, "Pb": 207.2, "U": 238.03,
}  # fmt: skip
COMPOUNDS = {
    "water": "H2O", "carbon dioxide": "CO2", "carbon monoxide": "CO", "methane": "CH4",
    "glucose": "C6H12O6", "sucrose": "C12H22O11", "sodium chloride": "NaCl", "table salt": "NaCl",
    "ammonia": "NH3", "ethanol": "C2H5OH", "benzene": "C6H6", "oxygen": "O2", "nitrogen": "N2",
    "hydrogen gas": "H2", "helium": "He", "sulfuric acid": "H2SO4", "sulphuric acid": "H2SO4",
    "hydrochloric acid": "HCl", "nitric acid": "HNO3", "sodium hydroxide": "NaOH",
    "potassium hydroxide": "KOH", "calcium carbonate": "CaCO3", "sodium bicarbonate": "NaHCO3",
    # elements by name, after the compounds that start with one ("carbon dioxide" is no carbon)
    "carbon": "C", "iron": "Fe", "gold": "Au", "silver": "Ag", "copper": "Cu", "aluminium": "Al",
    "aluminum": "Al", "sodium": "Na", "sulfur": "S", "sulphur": "S", "zinc": "Zn", "magnesium": "Mg",
    "calcium": "Ca", "potassium": "K", "mercury": "Hg", "silicon": "Si", "nickel": "Ni",
    "platinum": "Pt", "uranium": "U", "lithium": "Li", "neon": "Ne", "argon": "Ar",
}  # fmt: skip
_CHEMICAL = re.compile(r"\b(?:[A-Z][a-z]?\d*|\((?:[A-Z][a-z]?\d*)+\)\d*)+\b")
_ELEMENT = re.compile(r"([A-Z][a-z]?)(\d*)|\(([^()]+)\)(\d*)")


def molar_mass(formula: str) -> float:
    """g/mol of a chemical formula such as H2SO4 or Ca(OH)2."""
    total, at = 0.0, 0
    for match in _ELEMENT.finditer(formula):
        if match.start() != at:
            raise BadInstruction(f"cannot read the chemical formula {formula!r}", "instruction")
        at = match.end()
        if match[1]:
            if match[1] not in ATOMIC_WEIGHTS:
                raise BadInstruction(f"no standard atomic weight here for {match[1]!r}", "instruction")
            total += ATOMIC_WEIGHTS[match[1]] * int(match[2] or 1)
        else:
            total += molar_mass(match[3]) * int(match[4] or 1)
    if at != len(formula) or not total:
        raise BadInstruction(f"cannot read the chemical formula {formula!r}", "instruction")
    return total


_MASS_OF = re.compile(r"\d\s*(?:mg|g|kg|grams?|kilograms?|milligrams?|mol|moles?)\s+of\s+(.{1,40})", re.I)


def compound(text: str) -> str | None:
    """A chemical formula the question names, by formula (H2O) or common name (water); of several,
    the one a mass or amount is given of ("58.44 g of NaCl in 1 L of water" is NaCl)."""
    for match in _MASS_OF.finditer(text):
        named = _compound(match[1], first=True)
        if named:
            return named
    return _compound(text)


def _compound(text: str, first: bool = False) -> str | None:
    """The compound named by name (the table's order: "carbon dioxide" before "carbon") or by
    formula; with `first`, the one named first in the text (at one place, the table's first)."""
    lowered = text.lower()
    found: list[tuple[int, int, str]] = []  # (where, the table's order, formula)
    for order, (name, formula) in enumerate(COMPOUNDS.items()):
        named = re.search(rf"\b{name}\b", lowered)
        if named:
            if not first:
                return formula
            found.append((named.start(), order, formula))
    for match in _CHEMICAL.finditer(text):
        candidate = match[0]
        # a formula has a digit or two elements: "NaCl", "O2"; a lone capital ("A", "I") is no formula
        if (re.search(r"\d", candidate) or len(re.findall(r"[A-Z]", candidate)) > 1) and all(
            e in ATOMIC_WEIGHTS for e in re.findall(r"[A-Z][a-z]?", candidate)
        ):
            try:
                molar_mass(candidate)
            except BadInstruction:
                continue
            found.append((match.start(), -1, candidate))
            break
    return min(found)[2] if found else None


_HAS_NUMBER = re.compile(rf"(?<![A-Za-z]){NUMBER}")


def looks_like_formula(text: str) -> bool:
    """A question the formula tool may answer: it gives a number and names a formula's topic, or
    names what fills all but one of a formula's variables ("the escape velocity of the Earth")."""
    if re.search(r"\bmolar mass\b", text, re.I) and compound(text):
        return True
    called = [f for f in formulas() if f.called_for(text)]
    if _HAS_NUMBER.search(text):
        return bool(called)
    lowered = text.lower()
    return any(
        sum(1 for v in f.variables.values() if (v.default_when or v.others) and v.default_in(lowered))
        == len(f.variables) - 1
        for f in called
    )
