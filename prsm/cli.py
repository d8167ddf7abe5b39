"""The `prsm` command: run the embedded stack, ask questions, manage models and the database.

Errors print one line to stderr and exit with status 1 (2 for usage errors, from argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from prsm.errors import PRSMError
from prsm.ftns.amounts import format_ftns
from prsm.settings import Settings, apply_ray_env

DEMO_PROMPT = (
    "Differentiate x^3*sin(x) with respect to x, then evaluate that at x = 1. "
    "Convert 42 km to miles. In one sentence, what is entropy?"
)
RAY_MARKER = "ray-started-by-prsm"

# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


class CLIError(Exception):
    """A message for the user; exit status 1."""


def ray_bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise CLIError(f"{name} not found; install PRSM into this environment (make install)")
    return found


# --- database --------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace, settings: Settings) -> None:
    from prsm.db.engine import current_revision, downgrade, upgrade

    url = settings.resolved_database_url
    if args.action == "upgrade":
        upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        downgrade(url, args.revision or "-1")
    console.print(f"database {safe_url(url)} at revision {current_revision(url) or 'base'}")


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- running the stack -----------------------------------------------------------------------


def ray_running(env: dict[str, str]) -> bool:
    result = subprocess.run([ray_bin("ray"), "status"], env=env, capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> None:
    env = apply_ray_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker = settings.data_dir / RAY_MARKER
    address = settings.ray_address
    if address is None:
        if ray_running(env):
            console.print("using the Ray cluster already running on this machine")
        else:
            cpus = settings.ray_num_cpus or os.cpu_count() or 2
            console.print(f"starting a local Ray head ({cpus} CPUs)")
            started = subprocess.run(
                [ray_bin("ray"), "start", "--head", f"--num-cpus={cpus}", "--dashboard-host=127.0.0.1",
                 "--disable-usage-stats"],
                env=env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            if started.returncode != 0:
                raise CLIError(f"ray start failed:\n{started.stdout}\n{started.stderr}")
            marker.write_text("1\n")
        address = "auto"

    import ray
    from ray import serve

    from deployments.app import build_app

    t0 = time.perf_counter()
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        console.print("deploying the Serve app (first run converts the default model, ~30 s)")
        app = build_app(settings.model_dump(mode="json", exclude_unset=False))
        serve.run(app, name="prsm", route_prefix="/", blocking=False)
        wait_healthy(settings.base_url, timeout_s=args.timeout)
    finally:
        ray.shutdown()
    console.print(f"PRSM is up at {settings.base_url} ({time.perf_counter() - t0:.0f} s)")


def wait_healthy(base_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise CLIError(f"the app did not answer {base_url}/healthz within {timeout_s:.0f} s")


def cmd_down(_args: argparse.Namespace, settings: Settings) -> None:
    env = apply_ray_env()
    marker = settings.data_dir / RAY_MARKER
    if ray_running(env):
        import ray
        from ray import serve

        ray.init(address=settings.ray_address or "auto", logging_level="ERROR", log_to_driver=False)
        serve.shutdown()
        ray.shutdown()
        console.print("the Serve app is shut down")
    if marker.exists():
        subprocess.run([ray_bin("ray"), "stop"], env=env, capture_output=True, timeout=120)
        marker.unlink()
        console.print("the local Ray that `prsm up` started is stopped")


# --- talking to a running app ----------------------------------------------------------------


def api(settings: Settings, method: str, path: str, **kwargs) -> dict:
    try:
        response = httpx.request(method, settings.base_url + path, timeout=600, **kwargs)
    except httpx.ConnectError as exc:
        raise CLIError(f"PRSM is not running at {settings.base_url}; start it with `prsm up`") from exc
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            where = f"{error['field']}: " if error.get("field") else ""
            raise CLIError(f"{response.status_code} {error['type']}: {where}{error['message']}")
        except (ValueError, KeyError, TypeError):
            raise CLIError(f"{response.status_code}: {response.text[:500]}") from None
    return response.json()


def print_trace(trace: dict) -> None:
    console.print(f"\n[bold]Answer[/bold] (session {trace['session_id']}, {trace['status']})")
    console.print(trace.get("answer") or "")
    table = Table(title="Trace", show_lines=False)
    for column in (
        "task",
        "capability",
        "instruction",
        "model",
        "status",
        "latency ms",
        "tokens in/out",
        "FTNS",
    ):
        table.add_column(column, overflow="fold")
    for t in trace["tasks"]:
        latency = f"{t['latency_ms']:.0f}" if t.get("latency_ms") is not None else "-"
        deps = f" (after {', '.join(t['depends_on'])})" if t["depends_on"] else ""
        table.add_row(
            t["key"] + deps,
            t["capability"],
            t["instruction"][:70],
            t["model"] or "-",
            t["status"],
            latency,
            f"{t['tokens_in']}/{t['tokens_out']}",
            format_ftns(t.get("cost") or 0).removesuffix(" FTNS"),
        )
    console.print(table)
    total = trace.get("latency_ms")
    console.print(f"planner: {trace['planner']}, total {total:.0f} ms" if total else "")
    cost = trace.get("cost") or {}
    if cost.get("charged") is not None:
        split = ", ".join(f"{a} {format_ftns(v)}" for a, v in cost["split"].items())
        console.print(
            f"charged {format_ftns(cost['charged'])} to {trace['user']} (quoted {format_ftns(cost['quoted'])})"
            + (f": {split}" if split else "")
        )


def cmd_query(args: argparse.Namespace, settings: Settings) -> None:
    trace = api(settings, "POST", "/v1/query", json={"prompt": args.prompt, "user": args.user})
    if args.json:
        console.print_json(json.dumps(trace))
    else:
        print_trace(trace)


def cmd_session(args: argparse.Namespace, settings: Settings) -> None:
    if args.session_id == "export":
        if not args.export_id:
            raise CLIError("usage: prsm session export SESSION_ID")
        return export_session(args.export_id, settings)
    if args.export_id:
        raise CLIError("usage: prsm session SESSION_ID  |  prsm session export SESSION_ID")
    trace = api(settings, "GET", f"/v1/sessions/{args.session_id}")
    if args.json:
        console.print_json(json.dumps(trace))
    else:
        print_trace(trace)


def export_session(session_id: str, settings: Settings) -> None:
    """Put a finished session's trace into the content-addressed store (canonical JSON: the same
    trace always gets the same CID), record it as a `trace` artifact of the session's user."""
    from prsm.db.engine import make_engine, session_factory, upgrade
    from prsm.sessions import SessionStore
    from prsm.storage import open_store
    from prsm.storage.artifacts import Artifacts, canonical_json

    upgrade(settings.resolved_database_url)
    sessions = session_factory(make_engine(settings.resolved_database_url))
    trace = SessionStore(sessions).trace(session_id)  # SessionNotFound: exit 1 with the reason
    if trace["status"] == "running":
        raise CLIError(f"session {session_id} is still running: export it once it has finished")
    store = open_store(settings)
    cid = store.put(canonical_json(trace))
    Artifacts(sessions, store).register(cid, "trace", trace["user"], name=f"session-{session_id}.json")
    store.pin(cid)
    print(cid)


def cmd_models(args: argparse.Namespace, settings: Settings) -> None:
    if args.action == "list":
        models = api(settings, "GET", "/v1/models")["data"]
        table = Table(title="Models")
        for column in ("id", "kind", "tags", "owner", "price/1k tok", "price/call", "latency ms", "calls"):
            table.add_column(column)
        for m in models:
            latency = f"{m['latency_ms']:.0f}" if m["latency_ms"] is not None else "-"
            table.add_row(
                m["id"], m["kind"], ", ".join(m["tags"]), m["owner"], format_ftns(m["price_per_1k_tokens"]),
                format_ftns(m["price_per_call"]), latency, str(m["calls"]),
            )  # fmt: skip
        console.print(table)
    elif args.action == "register":
        card = json.loads(Path(args.file).read_text()) if args.file else {}
        for key in ("id", "kind", "description", "owner", "licence", "weights", "endpoint", "remote_model",
                    "price_per_1k_tokens", "price_per_call"):  # fmt: skip
            value = getattr(args, key)
            if value is not None:
                card[key] = value
        if args.tag:
            card["tags"] = args.tag
        created = api(settings, "POST", "/v1/models", json=card)
        console.print(f"registered {created['id']}")
    elif args.action == "prepare":
        from prsm.db.engine import upgrade
        from prsm.weights import prepare_default

        upgrade(settings.resolved_database_url)
        weights, folder = prepare_default(settings)
        console.print(f"default model ready: weights {weights}, loaded from {folder}")


FTNS_USAGE = {
    "balance": "ACCOUNT",
    "entries": "ACCOUNT",
    "transfer": "ACCOUNT AMOUNT --to ACCOUNT",
    "faucet": "ACCOUNT AMOUNT",
    "link": "ACCOUNT ADDRESS",
    "settle": "",
    "deposits": "",
    "reconcile": "",
    "reserve": "AMOUNT",
    "release-abandoned": "",
}


def cmd_ftns(args: argparse.Namespace, settings: Settings) -> None:
    """Operator commands on the ledger and the chain; they work on the database directly (no app
    needed). Chain commands use the in-process EVM unless PRSM_CHAIN_URL names a node."""
    import uuid

    from prsm.db.engine import upgrade
    from prsm.ftns.amounts import parse_ftns
    from prsm.ftns.ledger import Ledger

    wanted = len(FTNS_USAGE[args.action].replace("--to ACCOUNT", "").split())
    if len(args.params) != wanted:
        raise CLIError(f"usage: prsm ftns {args.action} {FTNS_USAGE[args.action]}".rstrip())
    upgrade(settings.resolved_database_url)
    ledger = Ledger(settings.resolved_database_url)
    key = args.key or f"cli-{uuid.uuid4()}"
    p = args.params
    if args.action == "balance":
        account = ledger.account(p[0])
        console.print(f"{account['account']} ({account['kind']}): {account['balance_ftns']}")
    elif args.action == "entries":
        table = Table(title=f"Entries of {p[0]}, newest first")
        for column in ("id", "kind", "amount", "balance after", "transaction", "at"):
            table.add_column(column)
        for e in ledger.entries(p[0], args.limit, args.before):
            table.add_row(str(e["id"]), e["kind"], format_ftns(e["amount"]), format_ftns(e["balance_after"]),
                          e["transaction_id"], e["created_at"])  # fmt: skip
        console.print(table)
    elif args.action == "faucet":
        amount = parse_ftns(p[1])
        ledger.open_account(p[0], "user")
        receipt = ledger.mint(p[0], amount, key, memo="dev faucet")
        console.print(f"minted {format_ftns(amount)} to {p[0]} (transaction {receipt.transaction_id})")
    elif args.action == "transfer":
        if not args.to:
            raise CLIError("transfer needs --to ACCOUNT")
        amount = parse_ftns(p[1])
        receipt = ledger.transfer(p[0], args.to, amount, key)
        again = " (a retry: nothing new was written)" if receipt.replayed else ""
        console.print(f"moved {format_ftns(amount)} from {p[0]} to {args.to}{again}")
    elif args.action == "release-abandoned":
        from prsm.sessions import release_abandoned

        released = release_abandoned(ledger, args.older_than * 60)
        console.print(
            f"released the holds of {len(released)} abandoned sessions"
            + "".join(f"\n  {s}" for s in released)
        )
    else:
        chain_command(args, settings, ledger)


def chain_command(args: argparse.Namespace, settings: Settings, ledger) -> None:
    from prsm.chain.client import Chain
    from prsm.chain.settlement import Settlement
    from prsm.ftns.amounts import parse_ftns

    with Chain.connect(settings) as chain:
        settlement = Settlement(settings, chain, ledger)
        if args.action == "link":
            address = settlement.link(args.params[0], args.params[1])
            console.print(f"{args.params[0]} is paid at and deposits from {address}")
        elif args.action == "reserve":
            amount = parse_ftns(args.params[0])
            settlement.fund_reserve(amount)
            console.print(
                f"minted {format_ftns(amount)} into the reserve; it holds {format_ftns(settlement.reserve())}"
            )
        elif args.action == "deposits":
            print_deposits(settlement.scan_deposits())
        elif args.action == "settle":
            if not args.no_deposits:
                print_deposits(settlement.scan_deposits())
            report = settlement.run(on_step=lambda step: console.print(f"  {SETTLE_STEPS[step]}"))
            if report is None:
                console.print("nothing to settle: no linked account earned since the last epoch")
                return
            table = Table(
                title=f"Epoch {report.epoch}: {report.status}, {format_ftns(report.total)} to {report.payees} payees"
            )
            for column in ("account", "address", "amount"):
                table.add_column(column)
            for account, address, amount in report.lines:
                table.add_row(account, address, format_ftns(amount))
            console.print(table)
            console.print(f"transaction {report.tx_hash}, block {report.block}, gas {report.gas_used}")
        elif args.action == "reconcile":
            differences, facts = settlement.reconcile()
            for fact in facts:
                console.print(fact)
            for difference in differences:
                console.print(f"[red]difference:[/red] {difference}")
            if differences:
                raise CLIError(f"{len(differences)} difference(s) between ledger and chain")
            console.print("ledger and chain agree")


SETTLE_STEPS = {
    "opened": "epoch opened: earnings frozen in the ledger",
    "signed": "transaction signed and recorded",
    "sent": "transaction sent",
    "mined": "transaction mined",
    "confirmed": "confirmed: the paid FTNS left the ledger",
}


def print_deposits(credited: list[dict]) -> None:
    for c in credited:
        console.print(f"deposit {format_ftns(c['amount'])} from {c['tx_hash']} credited to {c['account']}")


def fund_demo_account(settings: Settings) -> None:
    """The demo pays for its query like anyone: its account is topped up from the dev faucet."""
    import uuid

    from prsm.ftns.amounts import FTNS
    from prsm.ftns.ledger import Ledger

    ledger = Ledger(settings.resolved_database_url)
    ledger.open_account("demo")
    if ledger.balance("demo") < FTNS // 10:
        ledger.mint("demo", FTNS, f"demo-faucet-{uuid.uuid4()}", memo="dev faucet (prsm demo)")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    t0 = time.perf_counter()
    cmd_up(args, settings)
    try:
        fund_demo_account(settings)
        t_query = time.perf_counter()
        trace = api(settings, "POST", "/v1/query", json={"prompt": DEMO_PROMPT, "user": "demo"})
        console.print(f"\n[bold]Question[/bold]\n{DEMO_PROMPT}")
        print_trace(trace)
        console.print(
            f"first answer {time.perf_counter() - t0:.0f} s after start "
            f"(query {time.perf_counter() - t_query:.1f} s)"
        )
    finally:
        if not args.keep:
            cmd_down(args, settings)


def cmd_store(args: argparse.Namespace, settings: Settings) -> None:
    """The content-addressed store: local (PRSM_DATA_DIR/store) or an IPFS node (PRSM_IPFS_URL)."""
    from prsm.storage import open_store

    store = open_store(settings)
    needs = {"put": 1, "get": 1, "pin": 1, "unpin": 1, "ls": 0, "gc": 0}[args.action]
    if len(args.params) != needs:
        raise CLIError(
            f"usage: prsm store {args.action}"
            + (" FILE|FOLDER|-" if args.action == "put" else " CID" * needs)
        )
    if args.action == "put":
        source = args.params[0]
        if source == "-":
            cid = store.put(sys.stdin.buffer)
        elif Path(source).is_dir():  # a UnixFS directory, as `ipfs add -r` makes it
            cid = store.put_dir(Path(source))
        elif Path(source).is_file():
            cid = store.put(Path(source))
        else:
            raise CLIError(f"no such file or folder: {source}")
        if not args.no_pin:
            store.pin(cid)
        print(cid)  # plain stdout: scripts read the CID
    elif args.action == "get" and store.is_dir(args.params[0]):
        if not args.output:
            raise CLIError(f"{args.params[0]} is a folder: give -o FOLDER to write it to")
        target = Path(args.output)
        if target.exists():
            raise CLIError(f"{target} exists: give a new folder")
        tmp = target.with_name(f".{target.name}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        store.get_dir(args.params[0], tmp)
        tmp.rename(target)
        err.print(f"wrote {target}/")
    elif args.action == "get":
        chunks = store.get(args.params[0])  # a missing or corrupt root fails before any output
        if args.output:
            tmp = Path(args.output).with_name(f".{Path(args.output).name}.part")
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            tmp.replace(args.output)
            err.print(f"wrote {args.output}")
        else:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    elif args.action == "pin":
        store.pin(args.params[0])
        console.print(f"pinned {args.params[0]}")
    elif args.action == "unpin":
        store.unpin(args.params[0])
        console.print(f"unpinned {args.params[0]} (its blocks go at the next gc)")
    elif args.action == "ls":
        table = Table(title=f"Pinned in {getattr(store, 'root', None) or store.url}")
        for column in ("cid", "blocks", "bytes"):
            table.add_column(column)
        for row in store.ls():
            table.add_row(row["cid"], str(row["blocks"]), str(row["bytes"]))
        console.print(table)
    elif args.action == "gc":
        done = store.gc()  # an IPFS node reports only what it removed
        freed = f" ({done['freed_bytes']} bytes)" if "freed_bytes" in done else ""
        kept = f"; kept {done['kept_blocks']}" if "kept_blocks" in done else ""
        console.print(f"removed {done['removed_blocks']} blocks{freed}{kept}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prsm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("--revision", help="target revision (default: head / one step down)")
    db.set_defaults(fn=cmd_db)

    up = sub.add_parser("up", help="start local Ray (if needed) and the Serve app; return when healthy")
    up.add_argument("--timeout", type=float, default=600)
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the Serve app and the local Ray `prsm up` started").set_defaults(
        fn=cmd_down
    )

    demo = sub.add_parser("demo", help="up, ask a multi-part question, print answer and trace, down")
    demo.add_argument("--timeout", type=float, default=600)
    demo.add_argument("--keep", action="store_true", help="leave the app running afterwards")
    demo.set_defaults(fn=cmd_demo)

    q = sub.add_parser("query", help="ask a question; prints the answer and the trace")
    q.add_argument("prompt")
    q.add_argument("--user", default="anonymous")
    q.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    q.set_defaults(fn=cmd_query)

    s = sub.add_parser(
        "session",
        help="show a past session's trace; `prsm session export ID` stores it by CID (prints the CID)",
    )
    s.add_argument("session_id", help="a session id, or `export`")
    s.add_argument("export_id", nargs="?", help="export: the session to store")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_session)

    f = sub.add_parser(
        "ftns",
        help="FTNS: balances, entries, transfers, dev faucet; chain settlement, deposits, reconcile",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  prsm ftns {a} {u}" for a, u in FTNS_USAGE.items())
        + "\namounts in FTNS, e.g. 1.5 (18 decimals at most)",
    )
    f.add_argument("action", choices=list(FTNS_USAGE))
    f.add_argument("params", nargs="*", help="see below")
    f.add_argument("--to", help="transfer: the receiving account")
    f.add_argument("--no-deposits", action="store_true", help="settle: do not scan for deposits first")
    f.add_argument(
        "--older-than",
        type=float,
        default=30,
        help="release-abandoned: minutes a session has been running (30)",
    )
    f.add_argument("--key", help="idempotency key: repeat it to retry safely (default: a new one)")
    f.add_argument("--limit", type=int, default=50)
    f.add_argument("--before", type=int, help="entries: the page before this entry id")
    f.set_defaults(fn=cmd_ftns)

    st = sub.add_parser(
        "store", help="content-addressed store: put (prints the CID), get, pin, unpin, ls, gc"
    )
    st.add_argument("action", choices=["put", "get", "pin", "unpin", "ls", "gc"])
    st.add_argument("params", nargs="*", help="put: FILE, FOLDER or - (stdin); get/pin/unpin: CID")
    st.add_argument("-o", "--output", help="get: write to this file or new folder (default: stdout)")
    st.add_argument("--no-pin", action="store_true", help="put: do not pin (gc may remove it)")
    st.set_defaults(fn=cmd_store)

    sub.add_parser("distill", help="distil a teacher into a smaller student (prsm distill --help)")
    m = sub.add_parser("models", help="the model registry")
    m.add_argument("action", choices=["list", "register", "prepare"])
    m.add_argument("--file", help="register: a JSON model card (flags override its fields)")
    for flag in ("id", "kind", "description", "owner", "licence", "weights", "endpoint", "remote-model"):
        m.add_argument(f"--{flag}", dest=flag.replace("-", "_"))
    m.add_argument("--price-per-1k-tokens", dest="price_per_1k_tokens", help="FTNS base units")
    m.add_argument("--price-per-call", dest="price_per_call", help="FTNS base units")
    m.add_argument("--tag", action="append", help="a capability tag (repeat)")
    m.set_defaults(fn=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["distill"]:  # its own arguments: prsm/distill/cli.py
        from prsm.distill.cli import main as distill

        return distill(argv[1:])
    args = parser().parse_args(argv)
    try:
        args.fn(args, Settings())
    except (CLIError, PRSMError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
