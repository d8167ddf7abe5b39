"""Tool specialists as marketplace models: exact answers, flat price per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from prsm.backends.math_tool import solve_math
from prsm.backends.units_tool import convert_units
from prsm.errors import ModelCallFailed, UnknownModel
from prsm.types import ModelCall, ModelOutput


@dataclass(frozen=True)
class Tool:
    fn: Callable[[str], str]
    # SymPy can take seconds on hard input: it runs in a worker thread so the replica keeps
    # serving. A unit conversion takes microseconds: a thread hop would cost more than the work.
    may_block: bool


TOOLS: dict[str, Tool] = {
    "tool:math": Tool(solve_math, may_block=True),
    "tool:units": Tool(convert_units, may_block=False),
}


class ToolBackend:
    def __init__(self, tool: Tool):
        self._tool = tool

    async def run(self, call: ModelCall) -> ModelOutput:
        if call.response_format:
            raise ModelCallFailed("a tool answers in plain text; it cannot follow a response_format")
        if self._tool.may_block:
            return ModelOutput(text=await asyncio.to_thread(self._tool.fn, call.last_user_text))
        return ModelOutput(text=self._tool.fn(call.last_user_text))


def tool_backend(endpoint: str) -> ToolBackend:
    if endpoint not in TOOLS:
        raise UnknownModel(f"unknown tool {endpoint!r}; known: {', '.join(TOOLS)}", "endpoint")
    return ToolBackend(TOOLS[endpoint])
