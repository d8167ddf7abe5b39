"""Tool specialists as marketplace models: exact answers, flat price per call. Each call runs in
the sandbox (prsm/backends/sandbox.py): a worker process with CPU, memory and time limits."""

from __future__ import annotations

from prsm.backends.sandbox import Sandbox
from prsm.errors import BadInstruction, UnknownModel
from prsm.types import ModelCall, ModelOutput

# A card's endpoint names a tool; a tool is the import path of a function from text to text.
TOOLS: dict[str, str] = {
    "tool:math": "prsm.backends.math_tool:solve_math",
    "tool:units": "prsm.backends.units_tool:convert_units",
    "tool:formulas": "prsm.backends.formula_tool:answer_formula",
}


class ToolBackend:
    def __init__(self, path: str, sandbox: Sandbox):
        self._path = path
        self._sandbox = sandbox

    async def run(self, call: ModelCall) -> ModelOutput:
        if call.response_format:
            raise BadInstruction("a tool answers in plain text; it cannot follow a response_format")
        return ModelOutput(text=await self._sandbox.run(self._path, call.last_user_text))


def tool_backend(endpoint: str, sandbox: Sandbox) -> ToolBackend:
    if endpoint not in TOOLS:
        raise UnknownModel(f"unknown tool {endpoint!r}; known: {', '.join(TOOLS)}", "endpoint")
    return ToolBackend(TOOLS[endpoint], sandbox)
