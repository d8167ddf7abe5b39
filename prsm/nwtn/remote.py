"""NWTN's side of the Ray boundary, as plain callables: how it ranks and how it calls a model.

Each hop between Serve deployments costs about a millisecond of CPU on each side, whatever it
carries. Under load NWTN would make one router call and one tool call per sub-task; coalesced,
it makes one call per batch of sub-tasks. The deployment (deployments/app.py) hands in what
crosses the boundary (a handle's `.remote`); unit tests hand in in-process functions and drive
the same classes. Values cross as they are (prsm/types.py), errors through their own codec
(prsm/errors.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from prsm import logs
from prsm.errors import RETRY_AFTER_S, Overloaded, PRSMError, as_prsm_error, unwrap
from prsm.types import Candidate, ModelCall, ModelKind, ModelOutput, SubTask

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Many concurrent single calls become a few batched calls.

    A batch leaves at once when fewer than `max_in_flight` batches are out, so a lone request
    waits for nothing; under load, requests that arrive while batches are out ride in the next.
    When the last batch carried more than one call (load is here), the next one waits `linger_s`
    for company: each batch costs a hop's fixed CPU on both sides, so bigger batches cost less
    per call (measured with benchmarks/serve_overhead.py). A result that is an exception is
    raised to its own caller only.
    """

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Result | BaseException]]],
        max_batch: int = 64,
        max_in_flight: int = 1,
        linger_s: float = 0.005,
    ):
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._linger_s = linger_s
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._in_flight = 0
        self._busy = False
        self._lingering = False

    async def call(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and self._in_flight < self._max_in_flight and not self._lingering:
            if self._busy and self._linger_s and len(self._pending) < self._max_batch:
                self._lingering = True
                loop.call_later(self._linger_s, self._linger_done)
                return
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._busy = len(batch) > 1
            self._in_flight += 1
            loop.create_task(self._flush(batch))

    def _linger_done(self) -> None:
        self._lingering, self._busy = False, False  # this batch leaves now, however small
        self._pump()

    async def _flush(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} answered with {len(results)} results")
        except BaseException as exc:  # the whole batch failed: every caller gets the error
            results = [exc] * len(batch)
        finally:
            self._in_flight -= 1
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._pump()


# (sub-task, open circuits, quality/cost trade-off or None, request id): the id is for the
# router's log line (prsm/logs.py).
RankBatch = Callable[
    [list[tuple[SubTask, frozenset[str], float | None, str]]], Awaitable[list[list[Candidate]]]
]
# A model id gives the function that calls that model: once per call, or once per batch.
CallOne = Callable[[ModelCall], Awaitable[ModelOutput]]
CallBatch = Callable[[list[ModelCall]], Awaitable[list[ModelOutput | PRSMError]]]
# A call whose answer comes in pieces (prsm/backends/__init__.py's `stream_one`).
CallStream = Callable[[ModelCall], AsyncIterator[ModelOutput]]


class RouterClient:
    """NWTN's `rank`: the sub-tasks of concurrent queries go to the router in batches."""

    def __init__(self, rank_many: RankBatch):
        self._ranks = Coalescer(rank_many)

    async def __call__(
        self, task: SubTask, open_circuits: frozenset[str], route: float | None = None
    ) -> list[Candidate]:
        try:
            return await self._ranks.call((task, open_circuits, route, logs.REQUEST_ID.get()))
        except Exception as exc:  # the router's error arrives wrapped by Ray: raise it as itself
            raise as_prsm_error(unwrap(exc)) from None


# Ray's errors for an actor that died or cannot be reached (named, not imported: this module is
# library code without Ray).
REPLICA_DIED = frozenset({"ActorDiedError", "RayActorError", "ActorUnavailableError"})
# Serve's refusal of a call past a deployment's `max_queued_requests`: the model's replicas
# have more work queued than they take (deployments/app.py bounds the language models' queue).
QUEUE_FULL = "BackPressureError"


def model_error(exc: BaseException) -> PRSMError:
    """A model call's failure as the PRSM error it is: Ray's wrappers taken off, a full queue
    as `Overloaded` (a 503 with Retry-After, no mark against the model)."""
    if QUEUE_FULL in {type(exc).__name__, type(unwrap(exc)).__name__}:
        return Overloaded(
            "the model's replicas are at capacity: try again shortly", "model", retry_after_s=RETRY_AFTER_S
        )
    return as_prsm_error(unwrap(exc))


class ModelClient:
    """NWTN's `call`, dispatched by the model's kind. A transformers model's generation is long
    and heavy: one call each, to the replicas that host such models. Tools and remote endpoints
    are light and fast: batched per model, to the light replicas."""

    def __init__(
        self,
        heavy: Callable[[str], CallOne],
        light: Callable[[str], CallBatch],
        heavy_stream: Callable[[str], CallStream] | None = None,
    ):
        self._heavy_for, self._light_for, self._stream_for = heavy, light, heavy_stream
        self._heavy: dict[str, CallOne] = {}
        self._light: dict[str, Coalescer[ModelCall, ModelOutput]] = {}

    async def stream(self, model_id: str, kind: ModelKind, call: ModelCall) -> AsyncIterator[ModelOutput]:
        """The call's answer in pieces as the model makes them (a transformers model's, on its
        replica); any other kind's answer comes whole, as one piece. Closing this stream early
        cancels the call on its replica."""
        if kind != ModelKind.TRANSFORMERS or self._stream_for is None:
            yield await self(model_id, kind, call)
            return
        pieces = self._stream_for(model_id)(call)
        ended = False
        try:
            async for piece in pieces:
                yield piece
            ended = True
        except Exception as exc:  # a replica's error arrives wrapped by Ray: raise it as itself
            ended = True
            raise model_error(exc) from None
        finally:
            if not ended:  # left early (the client went away): the replica stops too
                stop = getattr(pieces, "cancel", None) or getattr(pieces, "aclose", None)
                if stop is not None and asyncio.iscoroutine(stopping := stop()):
                    await stopping

    async def __call__(self, model_id: str, kind: ModelKind, call: ModelCall) -> ModelOutput:
        for attempt in (1, 2):
            try:
                return await self._call(model_id, kind, call)
            except Exception as exc:  # a replica's error arrives wrapped by Ray: raise it as itself
                died = REPLICA_DIED & {type(exc).__name__, type(unwrap(exc)).__name__}
                if not died or attempt == 2:
                    raise model_error(exc) from None
                # The replica died mid-call (killed, out of memory): once more, on another
                # replica or the one Serve starts in its place.
        raise AssertionError("unreachable")

    async def _call(self, model_id: str, kind: ModelKind, call: ModelCall) -> ModelOutput:
        if kind == ModelKind.TRANSFORMERS:
            if model_id not in self._heavy:
                self._heavy[model_id] = self._heavy_for(model_id)
            return await self._heavy[model_id](call)
        if model_id not in self._light:
            self._light[model_id] = Coalescer(self._light_for(model_id))
        return await self._light[model_id].call(call)
