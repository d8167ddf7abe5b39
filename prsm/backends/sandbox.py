"""Tool calls in a sandbox: each runs in a worker process with a CPU-time, a memory and a
wall-clock limit, and a worker that overruns is killed and replaced.

A tool is plain Python on text a stranger wrote (SymPy, Pint): however carefully its input is
checked (math_tool.py, units_tool.py cap sizes before computing), some inputs still take
minutes or gigabytes. In a worker they cost that worker only: the caller gets a clear error, and
the other workers go on answering (a replacement starts in well under a second, forked from a
server process that has the tools imported already).

Limits: CPU seconds a call (RLIMIT_CPU, raised before each call: the kernel stops the worker
past it), bytes of address space (RLIMIT_AS: an allocation past it fails, and the worker is
replaced after answering), seconds of wall clock (the caller kills the worker), characters of
output. Workers are shared by every tool backend of a process (`Sandbox.shared`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pkgutil
import queue
import resource
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

# An overrun is the instruction's doing (the tools are PRSM's own): BadInstruction, a 422 for a
# direct call, and no mark against the tool's health.
from prsm import metrics
from prsm.errors import BadInstruction, as_prsm_error, error_from_dict

PRELOAD = ["prsm.backends.math_tool", "prsm.backends.units_tool", "prsm.backends.formula_tool"]


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5
    memory_bytes: int = 1024 * 1024**2
    wall_s: float = 10.0
    workers: int = 2
    output_chars: int = 100_000


def work(conn: Connection, limits: Limits) -> None:
    """A worker's loop: one call at a time, each under a fresh CPU limit."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    while True:
        try:
            path, argument = conn.recv()
        except EOFError:  # the sandbox closed, or its process died
            return
        # Only the soft limit moves (SIGXCPU stops the worker past it): a hard limit cannot be
        # raised again without privileges, and the next call needs a higher one.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        ceiling = int(usage.ru_utime + usage.ru_stime) + limits.cpu_s + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard != resource.RLIM_INFINITY:
            ceiling = min(ceiling, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (ceiling, hard))
        try:
            answer = pkgutil.resolve_name(path)(argument)
            if not isinstance(answer, str) or len(answer) > limits.output_chars:
                raise BadInstruction(
                    f"the tool's answer is not text of at most {limits.output_chars} characters"
                )
            conn.send(("ok", answer))
        except MemoryError:  # a worker that ran out of memory is not trusted with another call
            conn.send(
                (
                    "retire",
                    BadInstruction(f"the tool needed more than {limits.memory_bytes >> 20} MiB").to_dict(),
                )
            )
            return
        except Exception as exc:
            conn.send(("error", as_prsm_error(exc).to_dict()))


class Worker:
    def __init__(self, context, limits: Limits):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=work, args=(child, limits), daemon=True, name="prsm-tool")
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class Sandbox:
    _shared: dict[Limits, Sandbox] = {}
    _shared_lock = threading.Lock()

    def __init__(self, limits: Limits):
        self.limits = limits
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        """The workers, on the first call: a process that never runs a tool starts none."""
        with self._lock:
            if not self._started:
                for _ in range(self.limits.workers):
                    self._idle.put(Worker(self._context, self.limits))
                self._started = True

    @classmethod
    def shared(cls, limits: Limits) -> Sandbox:
        """The process's sandbox for these limits, started on first use."""
        with cls._shared_lock:
            if limits not in cls._shared:
                cls._shared[limits] = cls(limits)
            return cls._shared[limits]

    async def run(self, path: str, argument: str) -> str:
        """`path` ("module:function") applied to `argument` in a worker; its PRSM error as itself."""
        return await asyncio.to_thread(self._run, path, argument)

    def _run(self, path: str, argument: str) -> str:
        if not self._started:
            self._start()
        worker = self._idle.get()
        retire = True  # unless the worker answers and may take another call
        try:
            try:
                worker.conn.send((path, argument))
            except OSError:  # it had died while idle: a fresh one takes the call
                worker = self._replace(worker)
                worker.conn.send((path, argument))
            if not worker.conn.poll(self.limits.wall_s):
                metrics.TOOL_OVERRUNS.inc(limit="wall")
                raise BadInstruction(f"the tool ran past its {self.limits.wall_s:g} s limit and was stopped")
            try:
                status, value = worker.conn.recv()
            except EOFError:  # it died: the kernel stopped it past its CPU time, or it crashed
                raise self._death(worker) from None
            retire = status == "retire"
            if retire:
                metrics.TOOL_OVERRUNS.inc(limit="memory")
        finally:
            self._idle.put(self._replace(worker) if retire else worker)
        if status != "ok":
            raise error_from_dict(value)
        return value

    def _death(self, worker: Worker) -> BadInstruction:
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        if code in (-signal.SIGXCPU, -signal.SIGKILL):  # past the soft, or the hard, CPU limit
            metrics.TOOL_OVERRUNS.inc(limit="cpu")
            return BadInstruction(f"the tool ran past its {self.limits.cpu_s} s of CPU time and was stopped")
        return BadInstruction(f"the tool's worker died (exit code {code}) on this instruction")

    def _replace(self, worker: Worker) -> Worker:
        worker.kill()
        return Worker(self._context, self.limits)
