"""Deposits: FTNS sent on chain to the settlement contract, credited to the sender's account.

A Transfer of FTNS to the settlement contract, confirmed, is minted to the sender's linked
account (or to an account named after the address) with the idempotency key
`deposit:<chain>:<tx hash>:<log index>`, in the transaction that moves the scan cursor: exactly
once, whatever is rescanned.
"""

from __future__ import annotations

from web3 import Web3

from prsm.chain.contracts import ZERO, Contracts
from prsm.chain.links import linked
from prsm.ftns.ledger import mint_op


def deposit_key(chain_id: int, tx_hash: str, log_index: int) -> str:
    return f"deposit:{chain_id}:{tx_hash}:{log_index}"


def cursor_key(contracts: Contracts, addresses: dict) -> str:
    return f"deposits:{contracts.chain_id}:{addresses['settlement']}"


def scanned_through(contracts: Contracts, addresses: dict) -> int:
    """The last block whose deposits are credited."""
    return (contracts.state(cursor_key(contracts, addresses)) or {"block": addresses["block"] - 1})["block"]


def transfers_in(contracts: Contracts, addresses: dict, from_block: int, to_block: int) -> list:
    """Logs of FTNS transfers to the settlement contract (deposits; the reserve's mints aside)."""
    event = contracts.token(addresses).events.Transfer()
    logs = contracts.logs(event, from_block, {"to": addresses["settlement"]}, to_block)
    return [log for log in logs if log.args["from"] != ZERO]


def scan_deposits(contracts: Contracts, confirmations: int) -> list[dict]:
    """Credit every confirmed deposit since the last scan, exactly once; the new credits."""
    ledger, chain = contracts.ledger, contracts.chain
    addresses = contracts.addresses()
    cursor = scanned_through(contracts, addresses)
    head = chain.w3.eth.block_number - confirmations + 1
    if head <= cursor:
        return []
    accounts = linked(ledger)
    credited, ops = [], []
    for log in transfers_in(contracts, addresses, cursor + 1, head):
        sender = Web3.to_checksum_address(log.args["from"])
        account = accounts.get(sender)
        if account is None:  # an unlinked sender gets an account named by its address
            account = sender.lower()
            ledger.open_account(account)  # idempotent
        tx_hash = Web3.to_hex(log.transactionHash)
        key = deposit_key(contracts.chain_id, tx_hash, log.logIndex)
        ops.append(mint_op(account, log.args["value"], key, f"deposit {tx_hash}"))
        credited.append({"account": account, "amount": log.args["value"], "tx_hash": tx_hash,
                         "log_index": log.logIndex, "block": log.blockNumber})  # fmt: skip
    with ledger.engine.begin() as conn:
        results = ledger.post_many(ops, conn) if ops else []
        for result in results:
            if isinstance(result, Exception):
                raise result
        contracts.set_state(conn, cursor_key(contracts, addresses), {"block": head})
    return [c for c, r in zip(credited, results, strict=True) if not r.replayed]
