"""`prsm db upgrade|downgrade|current`: the database's Alembic migrations."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import make_url

from prsm.cli.common import console
from prsm.db.engine import current_revision, downgrade, upgrade
from prsm.services import Services


def add(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database migrations").add_subparsers(dest="action", required=True)
    up = db.add_parser("upgrade", help="migrate to a newer revision (default: the newest)")
    up.add_argument("--revision", default="head")
    up.set_defaults(fn=lambda args, services: migrate(services, upgrade, args.revision))
    down = db.add_parser("downgrade", help="migrate to an older revision (default: one step down)")
    down.add_argument("--revision", default="-1")
    down.set_defaults(fn=lambda args, services: migrate(services, downgrade, args.revision))
    db.add_parser("current", help="the database's revision").set_defaults(
        fn=lambda args, services: show(services)
    )


def migrate(services: Services, step, revision: str) -> None:
    step(services.settings.resolved_database_url, revision)
    show(services)


def show(services: Services) -> None:
    url = services.settings.resolved_database_url
    safe = make_url(url).render_as_string(hide_password=True)
    console.print(f"database {safe} at revision {current_revision(url) or 'base'}")
