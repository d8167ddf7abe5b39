"""`prsm audit`: the audit trail of state-changing requests (who, what, on what, with what outcome),
read from the database directly (the local CLI acts as the operator)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from prsm.cli.common import console
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="the audit trail of state-changing requests, newest first")
    audit.add_argument("--account", help="only this account's requests")
    audit.add_argument("--key", dest="key_id", help="only this key's requests (its id)")
    audit.add_argument("--limit", type=int, default=50, help="how many (50)")
    audit.add_argument("--before", type=int, help="older than this record id (paging)")
    audit.add_argument("--json", action="store_true", help="JSON lines")
    audit.set_defaults(fn=show)


def show(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    services.audit.flush()
    rows = services.audit.read(args.account, args.key_id, max(1, min(args.limit, 10_000)), args.before)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(title="audit trail, newest first")
    for column in ("id", "at", "key", "account", "action", "object", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]), r["at"], r["key_id"], r["account"], r["action"], r["object"], str(r["status"])
        )
    console.print(table)
