"""Which on-chain address a ledger account is paid at and deposits from."""

from __future__ import annotations

from sqlalchemy import select
from web3 import Web3

from prsm.chain.contracts import ZERO
from prsm.db.models import ChainAddress
from prsm.errors import InvalidInput
from prsm.ftns.ledger import Ledger

ADDRESSES = ChainAddress.__table__


def link(ledger: Ledger, account_id: str, address: str) -> str:
    """Set the address an account is paid at and deposits from; returns it checksummed."""
    if not isinstance(address, str) or not Web3.is_address(address):
        raise InvalidInput(f"{address!r} is not an Ethereum address", "address")
    if address.lower() == ZERO:
        raise InvalidInput("the zero address cannot receive payments", "address")
    address = Web3.to_checksum_address(address)
    ledger.balance(account_id)  # UnknownAccount
    with ledger.engine.begin() as conn:
        owner = conn.execute(select(ADDRESSES.c.account_id).where(ADDRESSES.c.address == address)).scalar()
        if owner is not None and owner != account_id:
            raise InvalidInput(f"{address} is already linked to account {owner!r}", "address")
        current = conn.execute(select(ADDRESSES).where(ADDRESSES.c.account_id == account_id)).first()
        if current is None:
            conn.execute(
                ADDRESSES.insert(), [{"account_id": account_id, "address": address, "settled_through": 0}]
            )
        else:
            conn.execute(
                ADDRESSES.update().where(ADDRESSES.c.account_id == account_id).values(address=address)
            )
    return address


def linked(ledger: Ledger) -> dict[str, str]:
    """{address: account id} of every linked account."""
    with ledger.reads.connect() as conn:
        return {r.address: r.account_id for r in conn.execute(select(ADDRESSES))}
