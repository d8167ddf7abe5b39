"""`prsm query` and `prsm session show|export`: ask a running app, read and store traces."""

from __future__ import annotations

import argparse
import json

from prsm.cli.common import CLIError, api, console, print_trace
from prsm.services import Services
from prsm.settings import tradeoff
from prsm.storage.artifacts import ArtifactKind, canonical_json
from prsm.types import SessionStatus

SESSION_VERBS = ("show", "export")


def add(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("query", help="ask a question; prints the answer and the trace")
    q.add_argument("prompt")
    q.add_argument("--user", default="anonymous")
    q.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    q.add_argument(
        "--route", help="quality/cost trade-off: quality, balanced, cost or 0..1 (default: the operator's)"
    )
    q.set_defaults(fn=query)

    s = sub.add_parser(
        "session", help="a past session: `show ID` (the default: `prsm session ID`) or `export ID`"
    ).add_subparsers(dest="action", required=True)
    show_ = s.add_parser("show", help="print a past session's trace")
    show_.add_argument("session_id")
    show_.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    show_.set_defaults(fn=show)
    export_ = s.add_parser("export", help="store a finished session's trace by CID (prints the CID)")
    export_.add_argument("session_id")
    export_.set_defaults(fn=export)


def query(args: argparse.Namespace, services: Services) -> None:
    body = {"prompt": args.prompt, "user": args.user}
    if args.route is not None:
        body["route"] = tradeoff(args.route)  # a bad one: exit 1 naming it, before any request
    trace = api(services.settings, "POST", "/v1/query", json=body)
    render(trace, args.json)


def show(args: argparse.Namespace, services: Services) -> None:
    render(api(services.settings, "GET", f"/v1/sessions/{args.session_id}"), args.json)


def render(trace: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(trace))
    else:
        print_trace(trace)


def export(args: argparse.Namespace, services: Services) -> None:
    """Put a finished session's trace into the content-addressed store (canonical JSON: the same
    trace always gets the same CID), record it as a `trace` artifact of the session's user."""
    services.db.upgrade()
    trace = services.sessions.trace(args.session_id)  # SessionNotFound: exit 1 with the reason
    if trace["status"] == SessionStatus.RUNNING:
        raise CLIError(f"session {args.session_id} is still running: export it once it has finished")
    cid = services.store.put(canonical_json(trace))
    services.artifacts.register(
        cid, ArtifactKind.TRACE, trace["user"], name=f"session-{args.session_id}.json"
    )
    services.store.pin(cid)
    print(cid)  # plain stdout: scripts read the CID
