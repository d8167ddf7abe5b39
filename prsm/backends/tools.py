"""Tool specialists as marketplace models: exact answers, flat price per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prsm.backends import ModelCall, ModelOutput
from prsm.backends.math_tool import solve_math
from prsm.backends.units_tool import convert_units
from prsm.errors import UnknownModel

TOOLS: dict[str, Callable[[str], str]] = {
    "tool:math": solve_math,
    "tool:units": convert_units,
}


class ToolBackend:
    def __init__(self, fn: Callable[[str], str]):
        self._fn = fn

    async def run(self, call: ModelCall) -> ModelOutput:
        # SymPy can take a while on hard input: keep the replica's event loop free meanwhile.
        text = await asyncio.to_thread(self._fn, call.last_user_text)
        return ModelOutput(text=text)


def tool_backend(endpoint: str) -> ToolBackend:
    if endpoint not in TOOLS:
        raise UnknownModel(f"unknown tool {endpoint!r}; known: {', '.join(TOOLS)}", "endpoint")
    return ToolBackend(TOOLS[endpoint])
