"""Scheduled-job rules every database backend must hold (SQLite in unit, PostgreSQL in integration)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from prsm.ops import Job, Schedules
from prsm.services import Services


def counting_job(name: str = "count", every: float = 60.0, lease_s: float = 30.0, work_s: float = 0.05):
    """A job that counts its runs (slow enough that racing replicas overlap)."""
    runs: list[str] = []
    lock = threading.Lock()

    def run(services: Services) -> str:
        threading.Event().wait(work_s)
        with lock:
            runs.append(name)
        return f"run {len(runs)}"

    return Job(name, "counts", lambda s: every, run, lease_s), runs


def check_a_due_job_runs_once_across_replicas(services: Services) -> None:
    job, runs = counting_job()
    replicas = [Schedules(services, {job.name: job}, owner=f"replica-{i}") for i in range(8)]
    replicas[0].ensure(now=1000.0)  # first due at 1060
    assert all(r.tick(now=1030.0) == [] for r in replicas) and runs == []
    with ThreadPoolExecutor(8) as pool:  # eight replicas' health checks at the same moment
        done = list(pool.map(lambda r: r.tick(now=1061.0), replicas))
    assert runs == ["count"], runs
    assert sum(len(d) for d in done) == 1
    [row] = replicas[0].status(now=1062.0)
    assert (row["runs"], row["outcome"], row["state"]) == (1, "ok", "scheduled")
    assert row["due_at"] > 1061.0 + 59  # the next run one interval after this one ended
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: r.tick(now=1100.0), replicas))
    assert runs == ["count"]  # not due again yet
