"""Scheduled jobs (prsm/ops.py): once across replicas, leases that outlive a dead replica, failures
recorded and retried, intervals changed and turned off, the store's gc sparing fresh uploads."""

from __future__ import annotations

import json
import os
import time

import pytest

from prsm.cli import main
from prsm.errors import JobRunning
from prsm.ops import JOBS, Job, Schedules
from tests import ops_checks


def test_a_due_job_runs_once_across_replicas(services):
    ops_checks.check_a_due_job_runs_once_across_replicas(services)


def test_a_lease_held_by_a_dead_replica_is_taken_over_after_its_bound(services):
    job, runs = ops_checks.counting_job(lease_s=30.0)
    dead = Schedules(services, {job.name: job}, owner="dead")
    alive = Schedules(services, {job.name: job}, owner="alive")
    dead.ensure(now=0.0)
    assert dead._claim(job, now=100.0, force=False)  # claimed, then the replica died mid-run
    assert alive.tick(now=110.0) == [] and runs == []
    status = alive.status(now=110.0)[0]
    assert (status["state"], status["running_on"]) == ("running", "dead")
    with pytest.raises(JobRunning, match="count is running on dead"):
        alive.run_now("count", now=110.0)  # within the lease: refused, not run twice
    [run] = alive.tick(now=131.0)  # past lease_until: another replica runs it
    assert run.outcome == "ok" and runs == ["count"]


def test_a_failing_job_is_recorded_and_retried_at_its_next_due_time(services):
    calls = []

    def flaky(_services):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("chain node unreachable")
        return "paid"

    job = Job("flaky", "fails once", lambda s: 10.0, flaky, 5.0)
    schedules = Schedules(services, {job.name: job})
    schedules.ensure(now=0.0)
    [run] = schedules.tick(now=11.0)
    assert (run.outcome, run.detail) == ("failed", "RuntimeError: chain node unreachable")
    row = schedules.status(now=12.0)[0]
    assert (row["failures"], row["last_ok_at"]) == (1, None)
    assert schedules.tick(now=12.0) == []  # not retried in a tight loop
    [run] = schedules.tick(now=time.time() + 11)
    assert (run.outcome, run.detail) == ("ok", "paid")
    row = schedules.status()[0]
    assert (row["runs"], row["failures"], row["outcome"]) == (2, 1, "ok")


def test_a_job_turned_off_never_runs_and_a_new_interval_reschedules(services):
    job, runs = ops_checks.counting_job(every=3600.0)
    Schedules(services, {job.name: job}).ensure(now=0.0)  # due at 3600
    off = Job(job.name, "off", lambda s: 0.0, job.run, 30.0)
    assert Schedules(services, {off.name: off}).tick(now=10_000.0) == []
    assert Schedules(services, {off.name: off}).status(now=10_000.0)[0]["state"] == "off"
    fast = Job(job.name, "every minute", lambda s: 60.0, job.run, 30.0)
    schedules = Schedules(services, {fast.name: fast})
    schedules.ensure(now=100.0)  # the interval changed: due one new interval from now
    assert schedules.status(now=100.0)[0]["due_at"] == 160.0
    assert len(schedules.tick(now=161.0)) == 1 and runs == ["count"]


def test_the_shipped_jobs_run_on_an_empty_node(services):
    schedules = Schedules(services)
    details = {name: schedules.run_now(name) for name in JOBS}
    assert {n: r.outcome for n, r in details.items() if r.outcome != "ok"} == {"federation": "skipped"}
    assert "PRSM_CHAIN_URL" in details["federation"].detail  # no chain the peers share: nothing to follow
    assert details["settle"].detail == "nothing to settle: no account is linked to a chain address"
    assert details["sweep"].detail == "released the holds of 0 abandoned sessions"
    assert details["gc"].detail.startswith("removed 0 blocks")


def test_scheduled_gc_spares_unpinned_blocks_younger_than_the_grace(services):
    store = services.store
    fresh = store.put(b"an upload whose pin is on its way" * 100)
    pinned = store.put(b"kept by its pin" * 100)
    store.pin(pinned)
    services.settings.gc_grace_s = 3600
    assert JOBS["gc"].run(services).startswith("removed 0 blocks")
    assert store.has(fresh)
    for pack in (store.root / "packs").iterdir():  # an hour and a bit later
        os.utime(pack, (time.time() - 3700, time.time() - 3700))
    assert JOBS["gc"].run(services).startswith("removed 1 blocks")
    assert not store.has(fresh) and store.has(pinned)


def test_prsm_ops_status_and_run(services, capsys, monkeypatch):
    monkeypatch.setenv("PRSM_DATA_DIR", str(services.settings.data_dir))
    assert main(["ops", "run", "sweep"]) == 0
    assert "sweep: ok" in capsys.readouterr().out
    assert main(["ops", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    sweep = next(j for j in status["jobs"] if j["job"] == "sweep")
    assert (sweep["runs"], sweep["outcome"]) == (1, "ok")
    assert status["open_holds"] == 0 and status["settlement_lag_s"] == 0
    assert main(["ops", "status"]) == 0
    assert "settle" in capsys.readouterr().out
    assert main(["ops", "run", "nothing"]) == 2
