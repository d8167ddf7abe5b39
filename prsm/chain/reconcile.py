"""Reconciliation: every way the ledger and the chain disagree about settlements and deposits."""

from __future__ import annotations

from sqlalchemy import select
from web3 import Web3
from web3.logs import DISCARD

from prsm.chain.contracts import Contracts
from prsm.chain.deposits import deposit_key, scanned_through, transfers_in
from prsm.chain.epochs import ENTRIES, EPOCHS, LINES, TXNS, EpochStatus
from prsm.ftns.amounts import format_ftns


def reconcile(contracts: Contracts) -> tuple[list[str], list[str]]:
    """(differences, facts): every disagreement, and the balances compared."""
    ledger, chain = contracts.ledger, contracts.chain
    addresses = contracts.addresses(deploy=False)
    token, settlement = contracts.token(addresses), contracts.settlement(addresses)
    differences: list[str] = []
    on_chain = {
        log.args["epoch"]: log
        for log in contracts.logs(settlement.events.EpochSettled(), addresses["block"], None)
    }
    with ledger.reads.connect() as conn:
        epochs = conn.execute(
            select(EPOCHS).where(EPOCHS.c.chain_id == contracts.chain_id).order_by(EPOCHS.c.id)
        ).all()
        lines = conn.execute(select(LINES)).all()
    by_epoch: dict[int, dict[str, int]] = {}
    for line in lines:
        by_epoch.setdefault(line.epoch_id, {})[line.address] = line.amount
    for e in epochs:
        log = on_chain.pop(e.id, None)
        if e.status != EpochStatus.CONFIRMED:
            if log is not None:
                differences.append(f"epoch {e.id}: settled on chain ({Web3.to_hex(log.transactionHash)}) but {e.status} "
                                   "in the ledger: run `prsm ftns settle`")  # fmt: skip
            continue
        if log is None:
            differences.append(
                f"epoch {e.id}: confirmed in the ledger ({e.tx_hash}) but not settled on chain"
            )
            continue
        receipt = chain.receipt(Web3.to_hex(log.transactionHash))
        paid: dict[str, int] = {}
        for t in token.events.Transfer().process_receipt(receipt, errors=DISCARD):
            if t.args["from"] == addresses["settlement"]:
                paid[t.args["to"]] = paid.get(t.args["to"], 0) + t.args["value"]
        for address in sorted(set(paid) | set(by_epoch.get(e.id, {}))):
            want, got = by_epoch.get(e.id, {}).get(address, 0), paid.get(address, 0)
            if want != got:
                differences.append(
                    f"epoch {e.id}: {address} ledger {format_ftns(want)}, chain {format_ftns(got)}"
                )
    for epoch_id, log in sorted(on_chain.items()):
        differences.append(
            f"epoch {epoch_id}: settled on chain ({Web3.to_hex(log.transactionHash)}) but unknown to the ledger"
        )

    cursor = scanned_through(contracts, addresses)
    chain_deposits = {}
    if cursor >= addresses["block"]:
        for log in transfers_in(contracts, addresses, addresses["block"], cursor):
            key = deposit_key(contracts.chain_id, Web3.to_hex(log.transactionHash), log.logIndex)
            chain_deposits[key] = log.args["value"]
    prefix = f"deposit:{contracts.chain_id}:"
    with ledger.reads.connect() as conn:
        rows = conn.execute(
            select(TXNS.c.idempotency_key, ENTRIES.c.amount)
            .join(ENTRIES, ENTRIES.c.transaction_id == TXNS.c.id)
            .where(TXNS.c.idempotency_key.like(prefix + "%"), ENTRIES.c.amount > 0)
        ).all()
    ledger_deposits = {k: v for k, v in rows}
    for k in sorted(set(chain_deposits) | set(ledger_deposits)):
        want, got = chain_deposits.get(k), ledger_deposits.get(k)
        if want != got:
            differences.append(
                f"deposit {k.removeprefix(prefix)}: chain {format_ftns(want) if want else 'none'}, "
                f"ledger {format_ftns(got) if got else 'none'}"
            )
    reserve = token.functions.balanceOf(addresses["settlement"]).call()
    facts = [
        f"chain {contracts.chain_id}: token {addresses['token']}, settlement {addresses['settlement']}",
        f"reserve on chain: {format_ftns(reserve)}",
        f"ledger balances (all accounts but issuance): {format_ftns(ledger.total())}",
        f"epochs: {len(epochs)} ({sum(e.status == EpochStatus.CONFIRMED for e in epochs)} confirmed), "
        f"deposits credited: {len(ledger_deposits)}, scanned through block {cursor}",
    ]
    return differences, facts
