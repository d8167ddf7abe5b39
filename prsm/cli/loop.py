"""`prsm loop`: the learning loop's steps, by hand. `clusters` clusters what language models
answered (prsm/stats.py) and saves the clusters the router places new sub-tasks in, so quality is
kept per cluster of similar sub-tasks (prsm/clusters.py); `canary` puts a student on one
cluster's traffic behind a sequential test, `status` shows every canary, `pin` and `rollback`
decide one by hand (prsm/canary.py)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from prsm import canary, clusters, loop, stats
from prsm.cli.common import console
from prsm.errors import InvalidInput
from prsm.ftns.amounts import format_ftns
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("loop", help="the learning loop: clusters, canaries").add_subparsers(
        dest="action", required=True
    )
    made = group.add_parser("clusters", help="cluster recent language-model sub-tasks and save the clusters")
    made.add_argument("--days", type=float, default=30.0, help="the window, in days back from now (30)")
    made.add_argument("--limit", type=int, default=5000, help="sub-tasks read, the oldest first (5000)")
    made.add_argument("--min-size", type=int, default=5, help="smallest cluster saved (5 sub-tasks)")
    made.add_argument("--json", action="store_true", help="one JSON object")
    made.set_defaults(fn=make_clusters)
    run_ = group.add_parser(
        "run", help="distil the costliest cluster from its traffic and start the student as a canary"
    )
    run_.add_argument("--days", type=float, default=30.0, help="the window, in days back from now (30)")
    run_.add_argument("--limit", type=int, default=5000, help="sub-tasks read, the oldest first (5000)")
    run_.add_argument("--min-size", type=int, default=5, help="smallest cluster saved (5 sub-tasks)")
    run_.add_argument("--steps", type=int, default=300, help="optimizer steps of the distillation (300)")
    run_.add_argument("--workers", type=int, default=1, help="Ray Train workers (1)")
    run_.add_argument(
        "--student", default="smollm2-15m", help="a preset or a JSON object of config overrides"
    )
    run_.add_argument("--batch-size", type=int, default=8, help="sequences a step, per worker (8)")
    run_.add_argument(
        "--cpus-per-worker", type=float, help="CPUs a worker asks of Ray (default: what is free)"
    )
    run_.add_argument("--json", action="store_true", help="one JSON object at the end")
    run_.set_defaults(fn=run)
    start_ = group.add_parser("canary", help="put a student on a cluster's traffic behind the canary's test")
    start_.add_argument("student", help="the student's model id")
    start_.add_argument("--cluster", required=True, help="a saved cluster's id (prsm loop clusters)")
    start_.add_argument("--incumbent", required=True, help="the model that serves the cluster now")
    start_.add_argument(
        "--baseline",
        type=float,
        default=1.0,
        help="the incumbent's own agreement across the cluster, in (0, 1]: the bar is the target x this (1)",
    )
    start_.set_defaults(fn=start_canary)
    status_ = group.add_parser("status", help="every canary: its step, share, grades and decisions")
    status_.add_argument("--json", action="store_true", help="one JSON object")
    status_.set_defaults(fn=show_status)
    for verb, helps in (("pin", "promote a student by hand"), ("rollback", "roll a student back by hand")):
        by_hand = group.add_parser(verb, help=helps)
        by_hand.add_argument("student")
        by_hand.add_argument("--cluster", help="only its canary on this cluster")
        by_hand.set_defaults(fn=pin if verb == "pin" else rollback)


def make_clusters(args: argparse.Namespace, services: Services) -> None:
    from prsm.nwtn.embed import Embedder  # torch and the embedding model: this command only

    if args.min_size < 1:
        raise InvalidInput("--min-size is at least 1", "min_size")
    start = stats.since(args.days)
    services.db.upgrade()
    embedder = Embedder()
    found = [c.view() | {"cluster": saved.id}
             for c, saved in loop.save_clusters(services, embedder, start, args.limit, args.min_size)]  # fmt: skip
    if args.json:
        print(json.dumps({"since": start.isoformat(), "clusters": found}))
        return
    table = Table(title=f"Clusters saved for routing ({embedder.name}, cosine >= {clusters.THRESHOLD})")
    for column in ("cluster", "capability", "sub-tasks", "cost", "example"):
        table.add_column(column)
    for c in found:
        table.add_row(c["cluster"], c["capability"], str(c["volume"]), format_ftns(int(c["cost"]["base_units"])),
                      c["examples"][0][:80])  # fmt: skip
    console.print(table)


def run(args: argparse.Namespace, services: Services) -> None:
    from transformers.utils import logging as hf_logging

    from prsm.nwtn.embed import Embedder

    if args.min_size < 1 or args.steps < 1 or args.workers < 1:
        raise InvalidInput("--min-size, --steps and --workers are at least 1", "arguments")
    hf_logging.disable_progress_bar()
    start = stats.since(args.days)
    services.db.upgrade()
    say = (lambda _: None) if args.json else console.print
    done = loop.run(services, Embedder(), start, limit=args.limit, min_size=args.min_size, steps=args.steps,
                    workers=args.workers, cpus_per_worker=args.cpus_per_worker, say=say, student=args.student,
                    batch_size=args.batch_size)  # fmt: skip
    if args.json:
        print(json.dumps(done))
    else:
        _print([done["canary"]], False)


def start_canary(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    steps = tuple(services.settings.canary_steps)
    _print(
        [
            canary.start(
                services.db,
                services.registry,
                args.student,
                args.cluster,
                args.incumbent,
                steps,
                args.baseline,
            )
        ],
        False,
    )


def show_status(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    _print(canary.status(services.db), args.json)


def pin(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    _print(canary.pin(services.db, args.student, args.cluster), False)


def rollback(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    _print(canary.rollback(services.db, services.registry, args.student, args.cluster), False)


def _print(canaries: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"canaries": canaries}))
        return
    table = Table(title="Canaries (prsm/canary.py)")
    for column in (
        "student",
        "cluster",
        "incumbent",
        "status",
        "share",
        "baseline",
        "grades",
        "mean grade",
        "last decision",
    ):
        table.add_column(column)
    for c in canaries:
        last = c["decisions"][-1] if c["decisions"] else {}
        table.add_row(c["student"], c["cluster"], c["incumbent"], c["status"], f"{c['share']:.0%}",
                      f"{c['baseline']:.3f}", str(c["grades"]),
                      "—" if c["mean_grade"] is None else f"{c['mean_grade']:.3f}",
                      f"{last.get('action', '')}: {last.get('reason', '')}")  # fmt: skip
    console.print(table)
