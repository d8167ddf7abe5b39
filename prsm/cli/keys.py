"""`prsm keys create|list|revoke|rotate`: API keys (with their limits), made and managed on the database directly (the
local CLI acts as the operator). A new key is printed once, on a line of its own."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta

from rich.table import Table

from prsm.cli.common import CLIError, console
from prsm.db.models import utcnow
from prsm.errors import InvalidInput
from prsm.ftns.amounts import format_ftns, parse_ftns
from prsm.services import Services
from prsm.types import KeyLimits, KeyRole

DURATION = re.compile(r"^(\d+)([dhm])$")


def add(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys: create (prints the key once), list, revoke, rotate")
    keys = keys.add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="a new key for an account (opened if new)")
    create.add_argument("account")
    create.add_argument("--role", choices=[str(r) for r in KeyRole], default=str(KeyRole.USER))
    create.add_argument("--name", help="a label shown in lists")
    create.add_argument("--expires", help="when it stops working: 30d, 12h, 45m, or an ISO 8601 time")
    create.add_argument("--rpm", type=int, help="requests per minute (none: no limit)")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--concurrency", type=int, help="queries and chat completions at once")
    create.add_argument("--budget", help="FTNS the key may spend per budget period, e.g. 2.5")
    create.add_argument("--budget-period", default="30d", help="the budget's period: 30d, 24h, 60m (30d)")
    create.set_defaults(fn=create_key)
    list_ = keys.add_parser("list", help="keys (never their secrets), newest first")
    list_.add_argument("account", nargs="?", help="only this account's")
    list_.set_defaults(fn=list_keys)
    revoke = keys.add_parser("revoke", help="stop a key now")
    revoke.add_argument("key_id")
    revoke.set_defaults(fn=revoke_key)
    rotate = keys.add_parser(
        "rotate", help="a new key for the same account and role; the old one lives on a while"
    )
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", default="60m", help="how long the old key keeps working (60m)")
    rotate.set_defaults(fn=rotate_key)


def when(text: str) -> datetime:
    """`30d`, `12h`, `45m` from now, or an ISO 8601 time (UTC if it names no zone)."""
    if match := DURATION.match(text):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
        return utcnow() + timedelta(**{unit: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"--expires {text!r}: give 30d, 12h, 45m or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def seconds(text: str, option: str = "--grace") -> float:
    match = DURATION.match(text)
    if not match:
        raise CLIError(f"{option} {text!r}: give e.g. 60m, 12h or 2d")
    return int(match[1]) * {"d": 86400, "h": 3600, "m": 60}[match[2]]


def create_key(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    expires = when(args.expires) if args.expires else None
    budget = None
    if args.budget is not None:
        try:
            budget = parse_ftns(args.budget)
        except (InvalidInput, ValueError):
            raise CLIError(f"--budget {args.budget!r}: give an amount of FTNS, e.g. 2.5") from None
    period = int(seconds(args.budget_period, "--budget-period"))
    limits = KeyLimits(args.rpm, args.tpm, args.concurrency, budget, period)
    token, record = services.keys.create(args.account, args.role, expires, args.name, limits)
    console.print(f"key {record.id} for {record.account} ({record.role}); it is shown only now:")
    print(token)  # plain stdout, its own line: scripts read it


def list_keys(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    table = Table(title="API keys, newest first")
    for column in ("id", "account", "role", "name", "created", "expires", "limits", "state"):
        table.add_column(column)
    now = utcnow()
    for r in services.keys.list(args.account):
        state = "active" if r.active(now) else ("revoked" if r.revoked_at else "expired")
        expires = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-"
        table.add_row(r.id, r.account, str(r.role), r.name or "-", r.created_at.isoformat(timespec="seconds"),
                      expires, limits_text(r.limits), state)  # fmt: skip
    console.print(table)


def limits_text(limits: KeyLimits) -> str:
    parts = [f"{v} {name}" for name, v in (("rpm", limits.rpm), ("tpm", limits.tpm),
             ("at once", limits.concurrent)) if v is not None]  # fmt: skip
    if limits.budget is not None:
        parts.append(f"{format_ftns(limits.budget)} FTNS / {limits.budget_period_s // 3600} h")
    return ", ".join(parts) or "-"


def revoke_key(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    record = services.keys.revoke(args.key_id)
    console.print(f"key {record.id} of {record.account} is revoked")


def rotate_key(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    grace = seconds(args.grace)
    token, record = services.keys.rotate(args.key_id, grace)
    console.print(f"key {record.id} replaces {args.key_id} (which works {args.grace} more); shown only now:")
    print(token)
