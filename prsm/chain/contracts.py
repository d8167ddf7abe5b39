"""PRSM's contracts on one chain, as this database knows them.

The FTNS token and the settlement contract are deployed on first use and their addresses kept
in `chain_state`, beside the other small facts about a chain (the deposit scanner's cursor).
A development chain (in-process, or chain id 31337) gets a reserve of 1,000,000 FTNS at
deployment; on a real network the operator funds the reserve (`prsm ftns reserve AMOUNT`). A node
that joins a network settles in the network's token (PRSM_FTNS_TOKEN): it deploys only its own
settlement contract, whose reserve it funds by transferring FTNS to it.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from prsm.chain.client import Chain
from prsm.db.models import ChainState, utcnow
from prsm.errors import ChainError
from prsm.ftns.amounts import FTNS
from prsm.ftns.ledger import Ledger

STATE = ChainState.__table__
ZERO = "0x0000000000000000000000000000000000000000"
DEV_RESERVE = 1_000_000 * FTNS
LOG_RANGE = 5_000  # blocks per eth_getLogs call: nodes limit the range


class Contracts:
    def __init__(self, chain: Chain, ledger: Ledger):
        self.chain = chain
        self.ledger = ledger
        self.chain_id = chain.chain_id

    def addresses(self, deploy: bool = True) -> dict:
        """{"token", "settlement", "block" (of deployment)} on this chain; deployed on first use."""
        key = f"contracts:{self.chain_id}"
        state = self.state(key)
        if state is not None:
            wanted = self.chain.token
            if wanted is not None and wanted.lower() != state["token"].lower():
                raise ChainError(
                    f"PRSM_FTNS_TOKEN names {wanted}, but this node settles in {state['token']} on chain "
                    f"{self.chain_id}: a node keeps the token it started with",
                    "ftns_token",
                )
            if not self.chain.has_code(state["settlement"]):
                raise ChainError(
                    f"the database names settlement contract {state['settlement']} on chain {self.chain_id}, "
                    "but the chain has no code there (was the chain reset?)"
                )
            return state
        if not deploy:
            raise ChainError(f"no PRSM contracts on chain {self.chain_id} yet: run `prsm ftns settle` first")
        state = self.chain.deploy()
        if self.chain.is_dev and self.chain.token is None:  # a joining node owns no token to mint
            self.chain.send(self.token(state).functions.mint(state["settlement"], DEV_RESERVE))
        with self.ledger.engine.begin() as conn:
            conn.execute(STATE.insert(), [{"key": key, "value": state}])
        return state

    def token(self, addresses: dict | None = None):
        return self.chain.contract("FTNSToken", (addresses or self.addresses())["token"])

    def settlement(self, addresses: dict | None = None):
        return self.chain.contract("FTNSSettlement", (addresses or self.addresses())["settlement"])

    def reserve(self) -> int:
        """FTNS the settlement contract holds to pay earnings with."""
        addresses = self.addresses()
        return self.token(addresses).functions.balanceOf(addresses["settlement"]).call()

    def fund_reserve(self, amount: int) -> None:
        """Mint FTNS into the reserve (the operator owns the token)."""
        addresses = self.addresses()
        self.chain.send(self.token(addresses).functions.mint(addresses["settlement"], amount))

    def logs(self, event, from_block: int, filters: dict | None, to_block: int | None = None):
        """An event's logs, fetched in ranges a node accepts."""
        to_block = self.chain.w3.eth.block_number if to_block is None else to_block
        for start in range(from_block, to_block + 1, LOG_RANGE):
            end = min(start + LOG_RANGE - 1, to_block)
            yield from event.get_logs(from_block=start, to_block=end, argument_filters=filters)

    def state(self, key: str) -> dict | None:
        with self.ledger.reads.connect() as conn:
            return conn.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()

    def set_state(self, conn: Connection, key: str, value: dict) -> None:
        if conn.execute(select(STATE.c.key).where(STATE.c.key == key)).first() is None:
            conn.execute(STATE.insert(), [{"key": key, "value": value}])
        else:
            conn.execute(STATE.update().where(STATE.c.key == key).values(value=value, updated_at=utcnow()))
