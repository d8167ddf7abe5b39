"""`prsm ops status|run`: the scheduled jobs (sweep, settle, gc) and the state an operator checks,
read from the database directly (the jobs run inside the cluster: prsm/ops.py)."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from prsm.cli.common import CLIError, console
from prsm.ops import JOBS, Schedules, facts
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    ops = sub.add_parser("ops", help="scheduled jobs: status, run one now").add_subparsers(
        dest="action", required=True
    )
    status_ = ops.add_parser(
        "status", help="each scheduled job's last run and next due time; open holds, lag"
    )
    status_.add_argument("--json", action="store_true", help="one JSON object")
    status_.set_defaults(fn=status)
    run_ = ops.add_parser("run", help="run one scheduled job now (unless a replica is running it)")
    run_.add_argument("job", choices=sorted(JOBS))
    run_.set_defaults(fn=run)


def status(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    now, schedules = time.time(), Schedules(services)
    schedules.ensure(now)
    jobs, state = schedules.status(now), facts(services)
    if args.json:
        print(json.dumps({"jobs": jobs, **state}))
        return
    table = Table(title="Scheduled jobs (run inside the cluster by one NWTN replica at a time)")
    for column in (
        "job",
        "every",
        "state",
        "last run",
        "outcome",
        "took",
        "next",
        "runs",
        "failed",
        "detail",
    ):
        table.add_column(column)
    for j in jobs:
        table.add_row(
            j["job"], _span(j["every_s"]) if j["every_s"] > 0 else "off", j["state"],
            _when(now, j["last_run_at"]), j["outcome"] or "—",
            f"{j['duration_s']:.2f} s" if j["duration_s"] is not None else "—",
            _when(now, j["due_at"]) if j["due_at"] is not None else "—",
            str(j["runs"]), str(j["failures"]), j["detail"] or j["description"],
        )  # fmt: skip
    console.print(table)
    oldest = state["oldest_open_hold_s"]
    console.print(
        f"open holds: {state['open_holds']}" + (f" (oldest {_span(oldest)})" if oldest is not None else "")
        + f"; running sessions: {state['running_sessions']}"
        + f"; settlement lag: {_span(state['settlement_lag_s']) if state['settlement_lag_s'] else 'none'}"
        + (f"; unconfirmed epoch {state['unconfirmed_epoch']}" if state["unconfirmed_epoch"] else "")
    )  # fmt: skip


def run(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    done = Schedules(services).run_now(args.job)
    console.print(f"{done.job}: {done.outcome} in {done.duration_s:.2f} s: {done.detail}")
    if done.outcome == "failed":
        raise CLIError(f"{done.job} failed (prsm ops status keeps the error)")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _when(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    return f"in {_span(at - now)}" if at > now else f"{_span(now - at)} ago"
