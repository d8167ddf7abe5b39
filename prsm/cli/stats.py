"""`prsm stats` and `prsm stats candidates`: analytics over the node's own records, read in place
by DuckDB (prsm/stats.py)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from prsm import stats
from prsm.cli.common import console
from prsm.ftns.amounts import format_ftns
from prsm.services import Services

VERBS = ("summary", "candidates")


def add(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "stats",
        help="volume, cost, latency and quality (`summary`, the default) or distillation `candidates`",
    ).add_subparsers(dest="action", required=True)
    summary_ = group.add_parser("summary", help="sub-tasks by day, capability and model; queries; earnings")
    summary_.add_argument("--days", type=float, default=7.0, help="the window, in days back from now (7)")
    summary_.add_argument(
        "--by", default="day,capability,model", help="group sub-tasks by these, comma-separated (all three)"
    )
    summary_.add_argument("--json", action="store_true", help="one JSON object")
    summary_.set_defaults(fn=summary)
    cand = group.add_parser("candidates", help="clusters of language-model sub-tasks, the costliest first")
    cand.add_argument("--days", type=float, default=30.0, help="the window, in days back from now (30)")
    cand.add_argument("--limit", type=int, default=5000, help="sub-tasks read, the oldest first (5000)")
    cand.add_argument(
        "--threshold", type=float, default=0.8, help="cosine similarity to join a cluster (0.8)"
    )
    cand.add_argument("--top", type=int, default=10, help="clusters shown (10)")
    cand.add_argument("--json", action="store_true", help="one JSON object")
    cand.set_defaults(fn=candidates)


def summary(args: argparse.Namespace, services: Services) -> None:
    by, start = stats.dimensions(args.by), stats.since(args.days)
    services.db.upgrade()
    con = stats.connect(services.settings)
    found = {"since": start.isoformat(), "by": by, "subtasks": stats.subtasks(con, start, by),
             "queries": stats.queries(con, start), "earnings": stats.earnings(con, start)}  # fmt: skip
    if args.json:
        print(json.dumps(found, default=str))
        return
    table = Table(title=f"Answered sub-tasks since {start:%Y-%m-%d %H:%M} UTC")
    for column in (*by, "sub-tasks", "cost", "p50 ms", "p95 ms", "quality", "grades"):
        table.add_column(column)
    for r in found["subtasks"]:
        table.add_row(*(str(r[d]) for d in by), str(r["subtasks"]), format_ftns(int(r["cost"]["base_units"])),
                      _ms(r["p50_ms"]), _ms(r["p95_ms"]),
                      "—" if r["quality"] is None else f"{r['quality']:.3f}", str(r["grades"]))  # fmt: skip
    console.print(table)
    table = Table(title="Queries by day")
    for column in ("day", "queries", "answered", "failed", "blocked", "charged", "p50 ms", "p95 ms"):
        table.add_column(column)
    for r in found["queries"]:
        table.add_row(r["day"], str(r["queries"]), str(r["answered"]), str(r["failed"]), str(r["blocked"]),
                      format_ftns(int(r["charged"]["base_units"])), _ms(r["p50_ms"]), _ms(r["p95_ms"]))  # fmt: skip
    console.print(table)
    table = Table(title="Earnings (payouts of captured charges)")
    for column in ("account", "kind", "payments", "earned"):
        table.add_column(column)
    for r in found["earnings"]:
        table.add_row(
            r["account"], r["kind"], str(r["payments"]), format_ftns(int(r["earned"]["base_units"]))
        )
    console.print(table)


def candidates(args: argparse.Namespace, services: Services) -> None:
    from prsm.nwtn.embed import Embedder  # torch and the embedding model: this command only

    start = stats.since(args.days)
    services.db.upgrade()
    con = stats.connect(services.settings)
    found = stats.candidates(con, Embedder(), start, args.limit, args.threshold, args.top)
    if args.json:
        print(json.dumps({"since": start.isoformat(), "threshold": args.threshold, "candidates": found}))
        return
    table = Table(title="Distillation candidates: language-model sub-tasks by cluster, costliest first")
    for column in ("cluster", "sub-tasks", "cost", "mean cost", "served by", "examples"):
        table.add_column(column)
    for c in found:
        table.add_row(c["cluster"], str(c["volume"]), format_ftns(int(c["cost"]["base_units"])),
                      format_ftns(int(c["mean_cost"]["base_units"])),
                      ", ".join(f"{m} ({n})" for m, n in c["models"].items()),
                      "\n".join(e[:80] for e in c["examples"]))  # fmt: skip
    console.print(table)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
