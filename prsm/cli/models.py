"""`prsm models list|register|prepare`: the marketplace registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from prsm.cli.common import CLIError, api, console
from prsm.ftns.amounts import format_ftns
from prsm.services import Services

CARD_FLAGS = ("id", "kind", "description", "owner", "licence", "weights", "endpoint", "remote-model")


def add(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="action", required=True)
    models.add_parser("list", help="the registered models").set_defaults(fn=list_models)
    register = models.add_parser("register", help="register a model card with the running app")
    register.add_argument("--file", help="a JSON model card (flags override its fields)")
    for flag in CARD_FLAGS:
        register.add_argument(f"--{flag}", dest=flag.replace("-", "_"))
    register.add_argument("--price-per-1k-tokens", dest="price_per_1k_tokens", help="FTNS base units")
    register.add_argument("--price-per-call", dest="price_per_call", help="FTNS base units")
    register.add_argument("--tag", action="append", help="a capability tag (repeat)")
    register.set_defaults(fn=register_model)
    prepare = models.add_parser("prepare", help="make the shipped default model loadable on this node")
    prepare.set_defaults(fn=prepare_default)


def list_models(args: argparse.Namespace, services: Services) -> None:
    table = Table(title="Models")
    columns = ("id", "kind", "tags", "owner", "price/1k tok", "price/call", "latency ms", "calls", "quality")
    for column in columns:
        table.add_column(column)
    for m in api(services.settings, "GET", "/v1/models")["data"]:
        latency = f"{m['latency_ms']:.0f}" if m["latency_ms"] is not None else "-"
        measured = ", ".join(f"{cap} {q['mean']:.2f}±{q['std']:.2f} (n={q['n']})"
                             for cap, q in m.get("measured_quality", {}).items())  # fmt: skip
        table.add_row(
            m["id"], m["kind"], ", ".join(m["tags"]), m["owner"], format_ftns(m["price_per_1k_tokens"]),
            format_ftns(m["price_per_call"]), latency, str(m["calls"]), measured or "-",
        )  # fmt: skip
    console.print(table)


def register_model(args: argparse.Namespace, services: Services) -> None:
    card = {}
    if args.file:
        try:
            card = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as exc:
            raise CLIError(f"--file {args.file}: {exc}") from None
    for key in [f.replace("-", "_") for f in CARD_FLAGS] + ["price_per_1k_tokens", "price_per_call"]:
        value = getattr(args, key)
        if value is not None:
            card[key] = value
    if args.tag:
        card["tags"] = args.tag
    created = api(services.settings, "POST", "/v1/models", json=card)
    console.print(f"registered {created['id']}")


def prepare_default(args: argparse.Namespace, services: Services) -> None:
    services.db.upgrade()
    weights, folder = services.prepare_default_model()
    console.print(f"default model ready: weights {weights}, loaded from {folder}")
