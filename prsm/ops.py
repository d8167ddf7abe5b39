"""Operations that run on a schedule inside the cluster: the abandoned-hold sweep, settlement
epochs, the store's garbage collection, the canaries' decisions and following the federation's
node registry.

Every NWTN replica calls `Schedules.tick` from Serve's health check (every few seconds, traffic
or not). A due job is claimed through its row in the `schedules` table by one atomic UPDATE that
succeeds only while the job is due and no live lease holds it: the replica that wins runs it,
the others see the lease and move on. So with several NWTN replicas, and with old and new
replicas side by side during a redeploy, each due run happens once. A replica that dies mid-run
keeps its lease until `lease_until` (the job's bound, `Job.lease_s`); then another replica takes
the job. Times are Unix seconds from each host's clock (hosts of a cluster keep NTP time).

Each run's outcome (ok, failed, skipped), a one-line detail, its duration and the next due time
are kept on the row: `prsm ops status` shows them, `prsm ops run JOB` runs one now through the
same lease, and the metrics count runs by job and outcome and keep each job's last success.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from prsm import logs, metrics
from prsm.db.models import (
    ChainAddress,
    LedgerHold,
    QuerySession,
    ScheduleRow,
    SettlementEpoch,
    as_utc,
    utcnow,
)
from prsm.errors import InvalidInput, JobRunning
from prsm.services import Services
from prsm.settings import Settings

SCHEDULES = ScheduleRow.__table__


class Skipped(Exception):  # noqa: N818 (an outcome, not an error)
    """A job that has nothing it may do here (its reason is the run's detail)."""


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    every: Callable[[Settings], float]  # seconds between runs; 0: off
    run: Callable[[Services], str]  # does the work; returns the detail line
    lease_s: float  # a run still leased after this long is presumed dead


def sweep(services: Services) -> str:
    released = services.billing.release_abandoned(services.settings.abandoned_after_s)
    metrics.HOLDS_SWEPT.inc(len(released))
    if released:
        logs.event("abandoned holds released", logging.WARNING, sessions=len(released))
    return f"released the holds of {len(released)} abandoned sessions"


def settle(services: Services) -> str:
    """Credit confirmed deposits, then settle an epoch: what `prsm ftns settle` does. The chain is
    opened for the run and closed after it, so the embedded chain's journal is free for the CLI
    between runs; with no linked account there is nothing to pay or credit and no chain is opened."""
    with services.db.engine.connect() as conn:
        links = conn.execute(select(ChainAddress.__table__.c.account_id).limit(1)).first()
    if links is None:
        return "nothing to settle: no account is linked to a chain address"
    from prsm.chain.client import Chain
    from prsm.chain.contracts import Contracts
    from prsm.chain.deposits import scan_deposits
    from prsm.chain.epochs import Settler

    with Chain.connect(services.settings) as chain:
        contracts = Contracts(chain, services.ledger)
        credited = scan_deposits(contracts, services.settings.chain_confirmations)
        report = Settler(services.settings, contracts).settle()
    deposits = f"{len(credited)} deposits credited; " if credited else ""
    if report is None:
        return f"{deposits}nothing to settle: no linked account earned since the last epoch"
    return f"{deposits}epoch {report.epoch} {report.status}: {report.payees} payees, transaction {report.tx_hash}"


def gc(services: Services) -> str:
    from prsm.nwtn.cache import SubtaskCache

    expired = SubtaskCache(services.db, services.settings.cache_ttl_s).expire()
    store = services.store
    if store.backend != "local":
        # An IPFS node collects its own garbage (`ipfs repo gc`, or its daemon's --enable-gc); a
        # collection started from here could not spare uploads whose pin is still on its way.
        raise Skipped(f"the IPFS node collects its own garbage ({expired} expired cache entries deleted)")
    done = store.gc(grace_s=services.settings.gc_grace_s)
    return (
        f"removed {done['removed_blocks']} blocks ({done['freed_bytes']} bytes); kept {done['kept_blocks']}; "
        f"{expired} expired cache entries deleted"
    )


def canaries(services: Services) -> str:
    from prsm import canary

    s = services.settings
    made = canary.decide(
        services.db, services.registry, s.canary_target, tuple(s.canary_steps), s.canary_step_grades
    )
    for d in made:
        logs.event(
            "canary " + d["action"], student=d["student"], cluster=d["cluster"], n=d["n"], mean=d["mean"]
        )
    running = sum(1 for c in canary.status(services.db) if c["status"] == "canary")
    return f"{len(made)} decisions; {running} canaries running" + "".join(
        f"; {d['student']} on {d['cluster']}: {d['action']}" for d in made
    )


def federation(services: Services) -> str:
    """Follow the node registry (prsm/federation/follow.py): what `prsm federation sync` does."""
    s = services.settings
    if not s.chain_url:
        raise Skipped("federation needs a chain the peers share (PRSM_CHAIN_URL)")
    from prsm.chain.client import Chain
    from prsm.chain.contracts import Contracts
    from prsm.errors import ChainError
    from prsm.federation import follow
    from prsm.federation.registry import NodeRegistry

    with Chain.connect(s) as chain:
        nodes = NodeRegistry(Contracts(chain, services.ledger), services.db, s.federation_registry,
                             s.federation_start_block)  # fmt: skip
        try:
            done = follow.follow(nodes, services.store, services.registry, s)
        except ChainError as exc:
            if "no node registry" in exc.message:
                raise Skipped(exc.message) from None
            raise
    return follow.summary(done)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("sweep", "release the holds of abandoned queries", lambda s: s.sweep_every_s, sweep, 600),
        Job(
            "settle", "credit deposits and settle an epoch on chain", lambda s: s.settle_every_s, settle, 1800
        ),
        Job("gc", "remove store blocks no pin reaches", lambda s: s.gc_every_s, gc, 3600),
        Job(
            "canary",
            "step up, promote or roll back canary students",
            lambda s: s.canary_every_s,
            canaries,
            60,
        ),
        Job(
            "federation",
            "follow the node registry: peers and their catalogues",
            lambda s: s.federation_sync_every_s,
            federation,
            600,
        ),
    )
}


@dataclass(frozen=True)
class Run:
    job: str
    outcome: str  # ok | failed | skipped
    detail: str
    duration_s: float


class Schedules:
    """The schedule of one process: `tick` runs what is due (blocking: call it in a thread)."""

    def __init__(self, services: Services, jobs: dict[str, Job] | None = None, owner: str | None = None):
        self.services = services
        self.jobs = JOBS if jobs is None else jobs
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._known = False

    @property
    def engine(self):
        return self.services.db.engine

    def _every(self, job: Job) -> float:
        return job.every(self.services.settings)

    def ensure(self, now: float | None = None) -> None:
        """A row for every job, first due one interval from now."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            have = {r.name: r for r in conn.execute(select(SCHEDULES))}
        for job in self.jobs.values():
            every, row = self._every(job), have.get(job.name)
            if row is not None:
                if row.every_s != every:  # the interval was changed: due one new interval after the last run
                    with self.engine.begin() as conn:
                        conn.execute(update(SCHEDULES).where(SCHEDULES.c.name == job.name).values(
                            every_s=every, due_at=(row.finished_at or now) + every))  # fmt: skip
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(SCHEDULES.insert().values(
                        name=job.name, every_s=every, due_at=now + every, runs=0, failures=0))  # fmt: skip
            except IntegrityError:  # another replica made it first
                pass
        self._known = True

    def tick(self, now: float | None = None) -> list[Run]:
        """Run each job that is due and not leased, once across all processes. A read finds
        the due jobs first, so a tick with nothing due writes nothing."""
        now = time.time() if now is None else now
        if not self._known:
            self.ensure(now)
        with self.engine.connect() as conn:
            due = conn.execute(
                select(SCHEDULES.c.name).where(
                    SCHEDULES.c.due_at <= now, or_(SCHEDULES.c.lease_until.is_(None), SCHEDULES.c.lease_until < now)
                )
            ).scalars().all()  # fmt: skip
        runs = []
        for name in due:
            job = self.jobs.get(name)
            if job is None or self._every(job) <= 0 or not self._claim(job, now, force=False):
                continue
            runs.append(self._run(job))
        return runs

    def run_now(self, name: str, now: float | None = None) -> Run:
        """Run one job now, whatever its due time, unless another process is running it."""
        job = self.jobs.get(name)
        if job is None:
            raise InvalidInput(f"no scheduled job {name!r}: one of {', '.join(self.jobs)}", "job")
        now = time.time() if now is None else now
        self.ensure(now)
        if not self._claim(job, now, force=True):
            with self.engine.connect() as conn:
                row = conn.execute(select(SCHEDULES).where(SCHEDULES.c.name == name)).one()
            raise JobRunning(
                f"{name} is running on {row.lease_owner} since {_ago(now, row.started_at)}", "job"
            )
        return self._run(job)

    def _claim(self, job: Job, now: float, force: bool) -> bool:
        free = or_(SCHEDULES.c.lease_until.is_(None), SCHEDULES.c.lease_until < now)
        where = [SCHEDULES.c.name == job.name, free] + ([] if force else [SCHEDULES.c.due_at <= now])
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(SCHEDULES).where(*where).values(lease_owner=self.owner, lease_until=now + job.lease_s, started_at=now)
            ).rowcount  # fmt: skip
        return claimed == 1

    def _run(self, job: Job) -> Run:
        started = time.perf_counter()
        try:
            outcome, detail = "ok", job.run(self.services)
        except Skipped as exc:
            outcome, detail = "skipped", str(exc)
        except Exception as exc:  # recorded and retried at the next due time
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        finished = time.time()
        every = self._every(job)
        ok = {"last_ok_at": finished} if outcome != "failed" else {}
        with self.engine.begin() as conn:
            conn.execute(
                update(SCHEDULES)
                .where(SCHEDULES.c.name == job.name, SCHEDULES.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None, finished_at=finished, due_at=finished + (every or 0),
                        every_s=every, outcome=outcome, detail=detail[:500], duration_s=duration,
                        runs=SCHEDULES.c.runs + 1, failures=SCHEDULES.c.failures + int(outcome == "failed"), **ok)
            )  # fmt: skip
        metrics.SCHEDULE_RUNS.inc(schedule=job.name, outcome=outcome)
        if outcome != "failed":
            metrics.SCHEDULE_LAST_OK.set(finished, schedule=job.name)
        level = logging.WARNING if outcome == "failed" else logging.INFO
        logs.event(
            "scheduled job", level, job=job.name, status=outcome, ms=round(duration * 1000, 1), detail=detail
        )
        return Run(job.name, outcome, detail, duration)

    def status(self, now: float | None = None) -> list[dict]:
        """Each job: its interval, last run, outcome and detail, next due time (or running)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(select(SCHEDULES))}
        out = []
        for job in self.jobs.values():
            every, row = self._every(job), rows.get(job.name)
            running = row is not None and row.lease_until is not None and row.lease_until >= now
            out.append({
                "job": job.name,
                "description": job.description,
                "every_s": every,
                "state": "off" if every <= 0 else "running" if running else "scheduled",
                "running_on": row.lease_owner if running else None,
                "last_run_at": row.finished_at if row else None,
                "last_ok_at": row.last_ok_at if row else None,
                "outcome": row.outcome if row else None,
                "detail": row.detail if row else None,
                "duration_s": row.duration_s if row else None,
                "due_at": row.due_at if row and every > 0 else None,
                "runs": row.runs if row else 0,
                "failures": row.failures if row else 0,
            })  # fmt: skip
        return out


def facts(services: Services) -> dict:
    """What an operator checks beside the schedules: open holds and their age, running sessions,
    settlement lag and the unconfirmed epoch."""
    from prsm.chain.epochs import unsettled_age_s

    holds, sessions, epochs = LedgerHold.__table__, QuerySession.__table__, SettlementEpoch.__table__
    with services.db.engine.connect() as conn:
        open_holds, oldest = conn.execute(
            select(func.count(), func.min(holds.c.created_at)).where(holds.c.status == "open")
        ).one()
        running = conn.execute(select(func.count()).where(sessions.c.status == "running")).scalar()
        unconfirmed = conn.execute(
            select(epochs.c.id, epochs.c.status).where(epochs.c.status != "confirmed").order_by(epochs.c.id)
        ).first()
    return {
        "open_holds": open_holds,
        "oldest_open_hold_s": round((utcnow() - as_utc(oldest)).total_seconds(), 1) if oldest else None,
        "running_sessions": running,
        "settlement_lag_s": round(unsettled_age_s(services.db.engine), 1),
        "unconfirmed_epoch": f"{unconfirmed.id} ({unconfirmed.status})" if unconfirmed else None,
    }


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    return f"{round(now - at)} s ago"
