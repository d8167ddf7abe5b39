"""Model backends: what actually runs a model card. Each is real: transformers, tools, remote."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prsm.registry import ModelCard


@dataclass(frozen=True)
class ModelCall:
    """One request to one model: OpenAI-style chat messages and a generation budget."""

    messages: tuple[dict, ...]
    max_new_tokens: int = 96
    # OpenAI's response_format: {"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}
    response_format: dict | None = None

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""


@dataclass(frozen=True)
class ModelOutput:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0


class Backend(Protocol):
    async def run(self, call: ModelCall) -> ModelOutput: ...


def load_backend(card: ModelCard, model_dir: Path, num_threads: int | None = None, store=None) -> Backend:
    """Build the backend that serves `card`; transformers weights load (converted, or fetched
    by CID from `store`) here."""
    if card.kind == "tool":
        from prsm.backends.tools import tool_backend

        return tool_backend(card.endpoint or "")
    if card.kind == "openai":
        from prsm.backends.remote import RemoteChatBackend

        return RemoteChatBackend(card.endpoint or "", card.remote_model or card.id)
    if card.kind == "transformers":
        from prsm.backends.causal_lm import CausalLMBackend

        return CausalLMBackend.load(card.weights or "", model_dir, num_threads=num_threads, store=store)
    raise ValueError(f"unknown model kind {card.kind!r}")


class LocalModels:
    """Backends loaded in this process, one per model id: the `call` NWTN uses when no Ray
    cluster hosts the models (tests, notebooks). The Serve app uses model replicas instead."""

    def __init__(self, registry, model_dir: Path, store=None):
        self.registry = registry
        self.model_dir = model_dir
        self.store = store
        self._backends: dict[str, Backend] = {}

    async def call(self, model_id: str, kind: str, call: ModelCall) -> ModelOutput:
        if model_id not in self._backends:
            card = self.registry.get(model_id)
            self._backends[model_id] = await asyncio.to_thread(
                load_backend, card, self.model_dir, None, self.store
            )
        return await self._backends[model_id].run(call)
