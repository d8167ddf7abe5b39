"""Model backends: what actually runs a model card. Each is real: transformers causal LMs
(causal_lm.py), exact tools (tools.py), OpenAI-compatible endpoints (remote.py).

A Serve model replica hosts backends by model id (deployments/app.py); `LocalModels` hosts them
in this process, for NWTN without a cluster (tests, notebooks). Both run calls the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from prsm import logs
from prsm.backends.sandbox import Sandbox
from prsm.egress import EgressPolicy
from prsm.errors import ModelCallFailed, PRSMError, as_prsm_error
from prsm.registry import Registry
from prsm.sealing import Sealer, context_of
from prsm.storage.base import BlockStore
from prsm.types import ModelCall, ModelCard, ModelKind, ModelOutput


class Backend(Protocol):
    async def run(self, call: ModelCall) -> ModelOutput: ...


async def run_one(backend: Backend, call: ModelCall, model_id: str = "") -> ModelOutput:
    """One call; any failure becomes a PRSM error, which crosses a process boundary as itself.
    Each call is a log line with its query's request id (prsm/logs.py)."""
    started = time.perf_counter()
    try:
        output = await backend.run(call)
    except Exception as exc:
        error = as_prsm_error(exc)
        _log_call(call, model_id, started, type(error).__name__)
        raise error from None
    _log_call(call, model_id, started, "ok", output)
    return output


async def stream_one(backend: Backend, call: ModelCall, model_id: str = "") -> AsyncIterator[ModelOutput]:
    """One call, streamed: pieces of the answer as they are made (each a `ModelOutput` whose
    text is the new piece and whose counts are the call's so far). A backend that streams (a
    transformers model) gives one piece per few tokens; any other gives its whole answer as one.
    The pieces joined are the text `run_one` answers; closing the stream early stops the call."""
    started = time.perf_counter()
    stream = getattr(backend, "stream", None)
    if stream is None:
        yield await run_one(backend, call, model_id)
        return
    last, status = None, "cancelled"
    try:
        async for piece in stream(call):
            last = piece
            yield piece
        status = "ok"
    except Exception as exc:
        error = as_prsm_error(exc)
        status = type(error).__name__
        raise error from None
    finally:
        _log_call(call, model_id, started, status, last)


async def run_many(
    backend: Backend, calls: list[ModelCall], model_id: str = ""
) -> list[ModelOutput | PRSMError]:
    """A batch of calls to one model, run concurrently: each gets its output or its own error."""

    async def one(call: ModelCall) -> ModelOutput | PRSMError:
        try:
            return await run_one(backend, call, model_id)
        except PRSMError as error:
            return error

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _log_call(
    call: ModelCall, model_id: str, started: float, status: str, output: ModelOutput | None = None
) -> None:
    logs.event(
        "model call",
        request_id=call.request_id or None,
        model_id=model_id or None,
        status=status,
        ms=round((time.perf_counter() - started) * 1000, 2),
        tokens_in=output.tokens_in if output else None,
        tokens_out=output.tokens_out if output else None,
    )


class LocalModels:
    """Backends by model id, loaded in this process from their registry cards. A Serve model
    replica loads through `load` and keeps a few (`@serve.multiplexed`); without a cluster,
    `backend` keeps every one it loaded. What a kind needs comes with it: a tool runs in
    `sandbox`; a remote endpoint is reached through `egress` with its card's credential, opened
    by `sealer`; a peer node's model is called with this node's chain key (`node_key`)."""

    def __init__(
        self,
        registry: Registry,
        model_dir: Path,
        store: BlockStore | None = None,
        num_threads: int | None = None,
        sandbox: Sandbox | None = None,
        egress: EgressPolicy | None = None,
        sealer: Sealer | None = None,
        node_key: Callable[[], object] | None = None,
    ):
        self.registry = registry
        self.model_dir = model_dir
        self.store = store
        self.num_threads = num_threads
        self.sandbox = sandbox
        self.egress = egress
        self.sealer = sealer
        self.node_key = node_key  # this node's chain key, read when a peer's model is first called
        self._backends: dict[str, Backend] = {}

    def load(self, model_id: str) -> Backend:
        """Blocking: reads the card, loads the weights."""
        return self.build(self.registry.get(model_id))

    def build(self, card: ModelCard) -> Backend:
        """The backend that serves `card`. Blocking: a transformers model's weights are
        converted, or fetched by CID from the store, and loaded here. Each kind's module is
        imported only when a card of that kind is loaded (torch only for transformers)."""
        if card.kind == ModelKind.TOOL:
            from prsm.backends.tools import tool_backend

            if self.sandbox is None:
                raise ModelCallFailed("this process runs no tools (no sandbox)", "model")
            return tool_backend(card.endpoint or "", self.sandbox)
        if card.kind == ModelKind.PEER:
            from prsm.backends.peer import PeerBackend

            if self.egress is None or self.node_key is None:
                raise ModelCallFailed(
                    "this process calls no peer nodes (no egress policy or chain key)", "model"
                )
            return PeerBackend(card, self.egress, self.node_key())
        if card.kind == ModelKind.OPENAI:
            from prsm.backends.remote import RemoteChatBackend

            if self.egress is None:
                raise ModelCallFailed("this process calls no remote endpoints (no egress policy)", "model")
            sealed = self.registry.credential(card.id)
            credential = None
            if sealed is not None:
                if self.sealer is None:
                    raise ModelCallFailed("this process cannot open credentials (no secret key)", "model")
                credential = self.sealer.open(sealed, context_of(card.id, card.endpoint or ""))
            return RemoteChatBackend(
                card.endpoint or "", card.remote_model or card.id, self.egress, credential
            )
        from prsm.backends.causal_lm import CausalLMBackend

        return CausalLMBackend.load(
            card.weights or "", self.model_dir, num_threads=self.num_threads, store=self.store
        )

    def host(self, model_id: str, backend: Backend) -> None:
        """Serve `model_id` with a backend built elsewhere (a notebook's own model, a test's)."""
        self._backends[model_id] = backend

    async def backend(self, model_id: str) -> Backend:
        if model_id not in self._backends:
            self._backends[model_id] = await asyncio.to_thread(self.load, model_id)
        return self._backends[model_id]

    async def run(self, model_id: str, call: ModelCall) -> ModelOutput:
        return await run_one(await self.backend(model_id), call, model_id)

    async def run_many(self, model_id: str, calls: list[ModelCall]) -> list[ModelOutput | PRSMError]:
        return await run_many(await self.backend(model_id), calls, model_id)

    async def stream(self, model_id: str, call: ModelCall) -> AsyncIterator[ModelOutput]:
        async for piece in stream_one(await self.backend(model_id), call, model_id):
            yield piece
