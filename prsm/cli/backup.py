"""`prsm backup DIR` and `prsm restore DIR`: a node's database, pinned store content, embedded
chain journal and key files, copied while it runs and put back onto a fresh data folder
(prsm/backup.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prsm.backup import backup, restore
from prsm.cli.common import console, err
from prsm.services import Services

SHOWN = ("sessions", "plan_tasks", "ftns_accounts", "ftns_entries", "model_cards", "api_keys", "artifacts")


def add(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="back up the database, store pins, chain journal and key files to DIR")
    b.add_argument("dir", help="a new folder (it holds keys: keep it private)")
    b.set_defaults(fn=run_backup)
    r = sub.add_parser("restore", help="restore a backup onto a fresh data folder (PRSM_DATA_DIR)")
    r.add_argument("dir", help="a folder `prsm backup` wrote")
    r.set_defaults(fn=run_restore)


def _progress(name: str, seconds: float) -> None:
    err.print(f"  {name}: {seconds:.2f} s")


def _summary(report) -> str:
    rows = ", ".join(f"{report.tables[t]} {t}" for t in SHOWN if t in report.tables)
    return f"{rows}; {report.pins} pins ({report.blocks} blocks, {report.bytes} bytes)"


def run_backup(args: argparse.Namespace, services: Services) -> None:
    report = backup(services, Path(args.dir), _progress)
    console.print(f"backed up to {report.folder} in {report.seconds:.2f} s: {_summary(report)}")


def run_restore(args: argparse.Namespace, services: Services) -> None:
    report = restore(services, Path(args.dir), _progress)
    console.print(
        f"restored onto {services.settings.data_dir} in {report.seconds:.2f} s: {_summary(report)}; "
        "start it with `prsm up`"
    )
