"""The safety screen every prompt passes before planning.

Deliberately small and explicit: a list of patterns, each with a category and a severity.
`block` refuses the query (HTTP 422, the flag is kept on a `blocked` session for audit);
`notice` lets it run and records the flag in the trace. A learned classifier can replace the
pattern list behind the same `screen` function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    category: str
    severity: str  # notice | block
    detail: str


_RULES = (
    (
        "weapons",
        "block",
        re.compile(
            r"\b(?:synthesi[sz]e|make|build|produce|weaponi[sz]e)\b.{0,60}\b(?:nerve\s+agent|sarin|vx\s+gas|"
            r"bioweapon|pipe\s+bomb|explosive\s+device|dirty\s+bomb|anthrax\s+spores)\b",
            re.I | re.S,
        ),
    ),
    (
        "prompt_injection",
        "notice",
        re.compile(r"\bignore\s+(?:all\s+)?(?:previous|prior|above)\s+instructions\b", re.I),
    ),
    (
        "secrets",
        "notice",
        re.compile(r"\b(?:sk-[A-Za-z0-9]{20,}|0x[0-9a-fA-F]{64})\b"),
    ),
)


def screen(prompt: str) -> list[Flag]:
    flags = []
    for category, severity, pattern in _RULES:
        match = pattern.search(prompt)
        if match:
            excerpt = match[0] if category != "secrets" else match[0][:6] + "…"
            flags.append(Flag(category, severity, f"matched {excerpt!r}"))
    return flags


def blocking(flags: list[Flag]) -> list[Flag]:
    return [f for f in flags if f.severity == "block"]
