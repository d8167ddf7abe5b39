"""What every command group shares: the consoles, the one error type, talking to a running app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from prsm.ftns.amounts import format_ftns
from prsm.settings import Settings

# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


class CLIError(Exception):
    """A message for the user; exit status 1."""


def wait_until_ok(url: str, what: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; CLIError naming `what` past `timeout_s`, or at once if
    `process` (the server we started) exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise CLIError(f"{what} exited with code {process.returncode} (see its log)")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise CLIError(f"{what} did not answer {url} within {timeout_s:.0f} s")


def ray_bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise CLIError(f"{name} not found; install PRSM into this environment (make install)")
    return found


def api_key(settings: Settings) -> str:
    """PRSM_API_KEY, else the development key `prsm up` wrote."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    try:
        return json.loads(settings.keys_file.read_text())["dev"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CLIError(
            f"no API key: set PRSM_API_KEY, or start PRSM with `prsm up` (it writes {settings.keys_file})"
        ) from None


def api(settings: Settings, method: str, path: str, **kwargs) -> dict:
    """Call the running app with the CLI's key; its error body becomes one CLIError line."""
    headers = {"authorization": f"Bearer {api_key(settings)}"}
    try:
        response = httpx.request(method, settings.base_url + path, timeout=600, headers=headers, **kwargs)
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
    columns = ("task", "capability", "instruction", "model", "status", "latency ms", "tokens in/out", "FTNS")
    for column in columns:
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
            f"charged {format_ftns(cost['charged'])} to {trace['account']} (quoted {format_ftns(cost['quoted'])})"
            + (f": {split}" if split else "")
        )
