"""Group commit: the writes of many concurrent callers folded into few transactions.

SQLite allows one writer at a time, and many small transactions from many threads spend their
time waiting on each other's locks; one writer thread per process that drains a queue into
batched transactions costs a fraction of that. Callers on any event loop await their own
write's commit (or its own error).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Executable

from prsm import metrics

# A write: (statement name, its parameters) pairs, and at most one (OPS, operation) pair whose
# operation `post` applies first; if `post` refuses it, the write is left out whole.
Write = list[tuple[str, Any]]
OPS = "ops"

# When the last batch held more than one write (callers are arriving concurrently), the writer
# waits this long before draining the queue: fewer, bigger transactions cost less CPU per write
# (measured with benchmarks/serve_overhead.py). A lone write never waits.
LINGER_S = 0.002


class GroupCommitter:
    """Runs writes submitted from any thread or event loop in batched transactions.

    A batch runs each statement once with the parameters of every write in it (executemany), in
    the order of `statements`, so inserts come before the updates that refer to them. A batch
    that fails is retried one write per transaction, so one bad write fails only its caller.
    A statement named in `lock_order` that updates shared rows (a model's counters) runs its
    parameters sorted by that key (a stable sort: one row's updates keep their order), so two
    batches in two processes lock those rows in one order and cannot deadlock (PostgreSQL).
    """

    def __init__(
        self,
        engine: Engine,
        statements: dict[str, Executable],
        post: Callable[[list, Connection], list[Exception | object]],
        max_batch: int = 512,
        name: str = "sessions",
        lock_order: dict[str, Callable[[dict], tuple]] | None = None,
    ):
        self.name = name  # the `writer` label of its metrics
        self._lock_order = lock_order or {}
        self._engine = engine
        self._statements = statements
        self._post = post
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, write: Write) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_thread()
        self._queue.put((write, loop, future))
        await future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="prsm-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        busy = False
        while True:
            batch = [self._queue.get()]
            if busy:
                time.sleep(LINGER_S)
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            busy = len(batch) > 1
            started = time.perf_counter()
            try:
                results = self._commit([write for write, _, _ in batch])
            except Exception:
                results = [self._alone(write) for write, _, _ in batch]
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started, writer=self.name)
            metrics.COMMIT_BATCH.observe(len(batch), writer=self.name)
            for (_, loop, future), error in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_settle, future, error)

    def _commit(self, writes: list[Write]) -> list[Exception | None]:
        """One transaction: the operations first; a write whose operation is refused is left out
        whole and gets the refusal as its result."""
        errors: list[Exception | None] = [None] * len(writes)
        ops = [(i, op) for i, write in enumerate(writes) for name, op in write if name == OPS]
        if len({i for i, _ in ops}) != len(ops):
            raise ValueError("a write carries at most one operation")
        with self._engine.begin() as conn:
            if ops:
                for (i, _), result in zip(ops, self._post([op for _, op in ops], conn), strict=True):
                    if isinstance(result, Exception):
                        errors[i] = result
            grouped: dict[str, list[dict]] = {name: [] for name in self._statements}
            for write, error in zip(writes, errors, strict=True):
                if error is None:
                    for name, params in write:
                        if name != OPS:
                            grouped[name].append(params)
            for name, statement in self._statements.items():
                if grouped[name]:
                    if name in self._lock_order:
                        grouped[name].sort(key=self._lock_order[name])
                    conn.execute(statement, grouped[name])
        return errors

    def _alone(self, write: Write) -> Exception | None:
        try:
            return self._commit([write])[0]
        except Exception as exc:  # handed to the caller that submitted this write
            return exc


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
