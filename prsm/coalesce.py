"""Request coalescing: many concurrent single calls to a remote service become a few batched calls.

Each hop between Serve deployments costs about a millisecond of CPU on each side, whatever it
carries. Under load NWTN would make one router call and one tool call per sub-task; coalesced,
it makes one call per batch of sub-tasks. A batch leaves at once when fewer than
`max_in_flight` batches are out, so a lone request waits for nothing; under load, requests
that arrive while batches are out ride in the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Result | BaseException]]],
        max_batch: int = 64,
        max_in_flight: int = 1,
    ):
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._in_flight = 0

    async def call(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        while self._pending and self._in_flight < self._max_in_flight:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._flush(batch))

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
