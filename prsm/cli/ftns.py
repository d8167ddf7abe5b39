"""`prsm ftns ...`: the operator's commands on the ledger and the chain.

They work on the database directly (no app needed). Chain commands use the in-process EVM
unless PRSM_CHAIN_URL names a node. Amounts are in FTNS, e.g. 1.5 (18 decimals at most).
"""

from __future__ import annotations

import argparse
import uuid

from rich.table import Table

from prsm.cli.common import CLIError, console
from prsm.ftns.amounts import format_ftns, parse_ftns
from prsm.services import Services

SETTLE_STEPS = {
    "opened": "epoch opened: earnings frozen in the ledger",
    "signed": "transaction signed and recorded",
    "sent": "transaction sent",
    "mined": "transaction mined",
    "confirmed": "confirmed: the paid FTNS left the ledger",
}


def add(sub: argparse._SubParsersAction) -> None:
    ftns = sub.add_parser(
        "ftns", help="FTNS: balances, entries, transfers, dev faucet; chain settlement, deposits, reconcile"
    ).add_subparsers(dest="action", required=True, metavar="COMMAND")

    def command(name: str, fn, help: str, *positionals: tuple[str, str], key: bool = False):
        p = ftns.add_parser(name, help=help, description=help)
        for dest, what in positionals:
            p.add_argument(dest, help=what)
        if key:
            p.add_argument("--key", help="idempotency key: repeat it to retry safely (default: a new one)")
        p.set_defaults(fn=fn)
        return p

    account = ("account", "a ledger account id")
    amount = ("amount", "FTNS, e.g. 1.5")
    command("balance", balance, "an account's balance", account)
    entries_ = command("entries", entries, "an account's ledger entries, newest first", account)
    entries_.add_argument("--limit", type=int, default=50)
    entries_.add_argument("--before", type=int, help="the page before this entry id")
    transfer_ = command("transfer", transfer, "move FTNS between accounts", account, amount, key=True)
    transfer_.add_argument("--to", required=True, help="the receiving account")
    command("faucet", faucet, "mint FTNS to an account (development)", account, amount, key=True)
    command("link", link, "the chain address an account is paid at", account, ("address", "0x..."))
    settle_ = command("settle", settle, "pay every linked payee's earnings on chain, in one transaction")
    settle_.add_argument("--no-deposits", action="store_true", help="do not scan for deposits first")
    command("deposits", deposits, "credit confirmed on-chain deposits")
    command("reconcile", reconcile, "compare the ledger with the chain")
    command("reserve", reserve, "mint FTNS into the settlement reserve", amount)
    release = command("release-abandoned", release_abandoned, "release the holds of abandoned sessions")
    release.add_argument(
        "--older-than", type=float, default=30, help="minutes a session has been running (30)"
    )


def ledger_of(services: Services):
    services.db.upgrade()
    return services.ledger


def balance(args: argparse.Namespace, services: Services) -> None:
    account = ledger_of(services).account(args.account)
    console.print(f"{account['account']} ({account['kind']}): {account['balance_ftns']}")


def entries(args: argparse.Namespace, services: Services) -> None:
    table = Table(title=f"Entries of {args.account}, newest first")
    for column in ("id", "kind", "amount", "balance after", "transaction", "at"):
        table.add_column(column)
    for e in ledger_of(services).entries(args.account, args.limit, args.before):
        table.add_row(str(e["id"]), e["kind"], format_ftns(e["amount"]), format_ftns(e["balance_after"]),
                      e["transaction_id"], e["created_at"])  # fmt: skip
    console.print(table)


def faucet(args: argparse.Namespace, services: Services) -> None:
    amount = parse_ftns(args.amount)
    ledger = ledger_of(services)
    ledger.open_account(args.account)
    receipt = ledger.mint(args.account, amount, args.key or f"cli-{uuid.uuid4()}", memo="dev faucet")
    console.print(f"minted {format_ftns(amount)} to {args.account} (transaction {receipt.transaction_id})")


def transfer(args: argparse.Namespace, services: Services) -> None:
    amount = parse_ftns(args.amount)
    receipt = ledger_of(services).transfer(args.account, args.to, amount, args.key or f"cli-{uuid.uuid4()}")
    again = " (a retry: nothing new was written)" if receipt.replayed else ""
    console.print(f"moved {format_ftns(amount)} from {args.account} to {args.to}{again}")


def release_abandoned(args: argparse.Namespace, services: Services) -> None:
    ledger_of(services)
    released = services.billing.release_abandoned(args.older_than * 60)
    console.print(
        f"released the holds of {len(released)} abandoned sessions" + "".join(f"\n  {s}" for s in released)
    )


# --- the chain ------------------------------------------------------------------------------


def contracts_of(services: Services):
    from prsm.chain.contracts import Contracts  # web3: only the chain commands load it

    return Contracts(services.chain, ledger_of(services))


def link(args: argparse.Namespace, services: Services) -> None:
    from prsm.chain.links import link as link_account

    address = link_account(ledger_of(services), args.account, args.address)
    console.print(f"{args.account} is paid at and deposits from {address}")


def reserve(args: argparse.Namespace, services: Services) -> None:
    amount = parse_ftns(args.amount)
    contracts = contracts_of(services)
    contracts.fund_reserve(amount)
    console.print(
        f"minted {format_ftns(amount)} into the reserve; it holds {format_ftns(contracts.reserve())}"
    )


def deposits(args: argparse.Namespace, services: Services) -> None:
    from prsm.chain.deposits import scan_deposits

    print_deposits(scan_deposits(contracts_of(services), services.settings.chain_confirmations))


def settle(args: argparse.Namespace, services: Services) -> None:
    from prsm.chain.deposits import scan_deposits
    from prsm.chain.epochs import Settler

    contracts = contracts_of(services)
    if not args.no_deposits:
        print_deposits(scan_deposits(contracts, services.settings.chain_confirmations))
    report = Settler(services.settings, contracts).settle(
        on_step=lambda s: console.print(f"  {SETTLE_STEPS[s]}")
    )
    if report is None:
        console.print("nothing to settle: no linked account earned since the last epoch")
        return
    total = format_ftns(report.total)
    table = Table(title=f"Epoch {report.epoch}: {report.status}, {total} to {report.payees} payees")
    for column in ("account", "address", "amount"):
        table.add_column(column)
    for account, address, amount in report.lines:
        table.add_row(account, address, format_ftns(amount))
    console.print(table)
    console.print(f"transaction {report.tx_hash}, block {report.block}, gas {report.gas_used}")


def reconcile(args: argparse.Namespace, services: Services) -> None:
    from prsm.chain.reconcile import reconcile as compare

    differences, facts = compare(contracts_of(services))
    for fact in facts:
        console.print(fact)
    for difference in differences:
        console.print(f"[red]difference:[/red] {difference}")
    if differences:
        raise CLIError(f"{len(differences)} difference(s) between ledger and chain")
    console.print("ledger and chain agree")


def print_deposits(credited: list[dict]) -> None:
    for c in credited:
        console.print(f"deposit {format_ftns(c['amount'])} from {c['tx_hash']} credited to {c['account']}")
