"""Settlement of the ledger on chain, deposits from chain to ledger, and reconciliation.

Settlement, once per epoch, one chain transaction (FTNSSettlement.settle: a batch transfer; the
contract explains why not a Merkle root). Each step is a database state, so a settler killed
anywhere and run again pays every payee exactly once:

  open       one DB transaction: the epoch, its lines (payee, address, amount) and, in the ledger,
             each payee's amount moved to `ftns:settling`. Amount = the payee's earnings (capture
             payouts and credits, not refunds of their own holds) in ledger entries after the
             payee's cursor, at most their balance; cursors move to the epoch's last entry.
  submitted  the signed transaction's hash, nonce and raw bytes are stored, then it is sent.
             Run again: the stored bytes are sent again (same hash: a no-op for the node); if the
             nonce went to another transaction, it is signed again with the next nonce. The
             contract refuses an epoch it has settled, so two transactions cannot both pay.
  confirmed  mined with enough blocks on top: one DB transaction burns the epoch's total from
             `ftns:settling` (the FTNS left the ledger for the chain) and records block and gas.

A reverted transaction (e.g. a reserve too small) puts the epoch back to open, with the reason.

Deposits: a Transfer of FTNS to the settlement contract, confirmed, is minted to the sender's
linked account (or to an account named after the address) with the idempotency key
`deposit:<chain>:<tx hash>:<log index>`, in the transaction that moves the scan cursor: exactly
once, whatever is rescanned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from web3 import Web3
from web3.logs import DISCARD

from prsm.chain.client import Chain, ChainError, SignedTx
from prsm.db.models import (
    ChainAddress,
    ChainState,
    LedgerAccount,
    LedgerEntry,
    LedgerHold,
    LedgerTransaction,
    SettlementEpoch,
    SettlementLine,
    utcnow,
)
from prsm.errors import InvalidInput
from prsm.ftns.amounts import FTNS, format_ftns
from prsm.ftns.ledger import SETTLING, Ledger, burn_op, mint_op, transfer_op

ADDRESSES, STATE = ChainAddress.__table__, ChainState.__table__
EPOCHS, LINES = SettlementEpoch.__table__, SettlementLine.__table__
ENTRIES, TXNS, HOLDS = LedgerEntry.__table__, LedgerTransaction.__table__, LedgerHold.__table__
ACCOUNTS = LedgerAccount.__table__
ZERO = "0x0000000000000000000000000000000000000000"
DEV_RESERVE = 1_000_000 * FTNS  # minted to the reserve when a development chain is deployed
LOG_RANGE = 5_000  # blocks per eth_getLogs call: nodes limit the range


@dataclass
class EpochReport:
    epoch: int
    status: str
    payees: int
    total: int
    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None
    lines: list[tuple[str, str, int]] = field(default_factory=list)  # account, address, amount


class Settlement:
    def __init__(self, settings, chain: Chain, ledger: Ledger | None = None):
        self.settings = settings
        self.chain = chain
        self.ledger = ledger or Ledger(settings.resolved_database_url)
        self.engine = self.ledger.engine  # write transactions take the lock up front (SQLite)
        self._postgres = self.engine.dialect.name == "postgresql"
        self.chain_id = chain.chain_id

    # --- contracts --------------------------------------------------------------------------

    def contracts(self, deploy: bool = True) -> dict:
        """The token and settlement addresses on this chain; deployed on first use."""
        key = f"contracts:{self.chain_id}"
        state = self._state(key)
        if state is not None:
            if not self.chain.has_code(state["settlement"]):
                raise ChainError(
                    f"the database names settlement contract {state['settlement']} on chain {self.chain_id}, "
                    "but the chain has no code there (was the chain reset?)"
                )
            return state
        if not deploy:
            raise ChainError(f"no PRSM contracts on chain {self.chain_id} yet: run `prsm ftns settle` first")
        state = self.chain.deploy()
        if self.chain.is_dev:  # a development chain gets a reserve; a real one is funded by its operator
            self.chain.send(self.token(state).functions.mint(state["settlement"], DEV_RESERVE))
        with self.engine.begin() as conn:
            conn.execute(STATE.insert(), [{"key": key, "value": state}])
        return state

    def token(self, contracts: dict | None = None):
        return self.chain.contract("FTNSToken", (contracts or self.contracts())["token"])

    def settlement(self, contracts: dict | None = None):
        return self.chain.contract("FTNSSettlement", (contracts or self.contracts())["settlement"])

    def reserve(self) -> int:
        contracts = self.contracts()
        return self.token(contracts).functions.balanceOf(contracts["settlement"]).call()

    def fund_reserve(self, amount: int) -> None:
        """Mint FTNS into the reserve (the operator owns the token)."""
        contracts = self.contracts()
        self.chain.send(self.token(contracts).functions.mint(contracts["settlement"], amount))

    # --- payee addresses --------------------------------------------------------------------

    def link(self, account_id: str, address: str) -> str:
        """Set the address an account is paid at and deposits from; returns it checksummed."""
        if not isinstance(address, str) or not Web3.is_address(address):
            raise InvalidInput(f"{address!r} is not an Ethereum address", "address")
        if address.lower() == ZERO:
            raise InvalidInput("the zero address cannot receive payments", "address")
        address = Web3.to_checksum_address(address)
        self.ledger.balance(account_id)  # UnknownAccount
        with self.engine.begin() as conn:
            owner = conn.execute(
                select(ADDRESSES.c.account_id).where(ADDRESSES.c.address == address)
            ).scalar()
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

    # --- settlement -------------------------------------------------------------------------

    def run(self, on_step: Callable[[str], None] | None = None) -> EpochReport | None:
        """Finish the unfinished epoch, or open and settle a new one. None: nothing to pay."""
        step = on_step or (lambda name: None)
        contracts = self.contracts()
        epoch = self._unfinished()
        if epoch is None:
            epoch = self._open()
            if epoch is None:
                return None
            step("opened")
        if epoch.status == "open":
            tx = self._sign(epoch, contracts)
            step("signed")
            self.chain.broadcast(tx)
            step("sent")
        else:
            self._resend(self._epoch(epoch.id), contracts)
        receipt = self._mined(self._epoch(epoch.id), contracts)
        step("mined")
        self._confirm(epoch.id, receipt)
        step("confirmed")
        return self.report(epoch.id)

    def report(self, epoch_id: int) -> EpochReport:
        e = self._epoch(epoch_id)
        with self.ledger.reads.connect() as conn:
            lines = conn.execute(
                select(LINES.c.account_id, LINES.c.address, LINES.c.amount)
                .where(LINES.c.epoch_id == epoch_id)
                .order_by(LINES.c.account_id)
            ).all()
        return EpochReport(e.id, e.status, e.payees, e.total, e.tx_hash, e.block_number, e.gas_used,
                           [tuple(line) for line in lines])  # fmt: skip

    def _open(self) -> SettlementEpoch | None:
        with self.engine.begin() as conn:
            if self._postgres:  # entries of in-flight transactions must not slip below the cut
                conn.execute(text("LOCK TABLE ftns_entries IN SHARE MODE"))
            links = {
                r.account_id: r for r in conn.execute(select(ADDRESSES).order_by(ADDRESSES.c.account_id))
            }
            through = conn.execute(select(func.max(ENTRIES.c.id))).scalar() or 0
            if not links or through == 0:
                return None
            low = min(r.settled_through for r in links.values())
            rows = conn.execute(
                select(
                    ENTRIES.c.id, ENTRIES.c.account_id, ENTRIES.c.amount, HOLDS.c.account_id.label("holder")
                )
                .join(TXNS, TXNS.c.id == ENTRIES.c.transaction_id)
                .outerjoin(HOLDS, HOLDS.c.id == TXNS.c.hold_id)
                .where(ENTRIES.c.id > low, ENTRIES.c.id <= through, ENTRIES.c.account_id.in_(links))
                .where(TXNS.c.kind.in_(("capture", "credit")))
            )
            earned: dict[str, int] = {}
            for r in rows:
                if r.amount > 0 and r.id > links[r.account_id].settled_through and r.holder != r.account_id:
                    earned[r.account_id] = earned.get(r.account_id, 0) + r.amount
            balances = dict(
                conn.execute(select(ACCOUNTS.c.id, ACCOUNTS.c.balance).where(ACCOUNTS.c.id.in_(earned))).all()
            )
            payable = sorted((a, min(v, balances.get(a, 0))) for a, v in earned.items())
            payable = [(a, v) for a, v in payable if v > 0][: self.settings.settle_max_payees]
            # Accounts past the per-epoch limit keep their cursor: they are paid next epoch.
            left_out = set(earned) - {a for a, _ in payable}
            moved = [a for a in links if a not in left_out]
            conn.execute(
                ADDRESSES.update().where(ADDRESSES.c.account_id.in_(moved)).values(settled_through=through)
            )
            if not payable:
                return None
            total = sum(v for _, v in payable)
            epoch_id = conn.execute(
                EPOCHS.insert().values(
                    chain_id=self.chain_id,
                    status="open",
                    through_entry=through,
                    payees=len(payable),
                    total=total,
                    created_at=utcnow(),
                )  # fmt: skip
            ).inserted_primary_key[0]
            conn.execute(
                LINES.insert(),
                [
                    {"epoch_id": epoch_id, "account_id": a, "address": links[a].address, "amount": v}
                    for a, v in payable
                ],
            )
            ops = [
                transfer_op(
                    a, SETTLING, v, f"settle:{self.chain_id}:{epoch_id}:{a}", f"settlement epoch {epoch_id}"
                )
                for a, v in payable
            ]
            for result in self.ledger.post_many(ops, conn):
                if isinstance(result, Exception):
                    raise result  # cannot happen (amounts are at most the balances): roll back all
        return self._epoch(epoch_id)

    def _sign(self, epoch: SettlementEpoch, contracts: dict, nonce: int | None = None) -> SignedTx:
        reserve = self.token(contracts).functions.balanceOf(contracts["settlement"]).call()
        if reserve < epoch.total:
            raise ChainError(
                f"the settlement reserve holds {format_ftns(reserve)}, epoch {epoch.id} needs "
                f"{format_ftns(epoch.total)}: fund it (prsm ftns reserve AMOUNT) and run settle again"
            )
        lines = self.report(epoch.id).lines
        call = self.settlement(contracts).functions.settle(
            epoch.id, [Web3.to_checksum_address(a) for _, a, _ in lines], [v for _, _, v in lines]
        )
        tx = self.chain.sign(call, nonce=nonce)
        with self.engine.begin() as conn:  # recorded before it is sent: a crash cannot lose it
            conn.execute(
                EPOCHS.update().where(EPOCHS.c.id == epoch.id)
                .values(status="submitted", tx_hash=tx.hash, nonce=tx.nonce, raw_tx=tx.raw, submitted_at=utcnow())
            )  # fmt: skip
        return tx

    def _resend(self, epoch: SettlementEpoch, contracts: dict) -> None:
        if self.chain.receipt(epoch.tx_hash) is not None or self._settled_by(epoch.id, contracts):
            return
        used = self.chain.w3.eth.get_transaction_count(self.chain.operator.address, "latest")
        if used > epoch.nonce:  # our nonce went to another transaction: sign again, next nonce
            self.chain.broadcast(self._sign(epoch, contracts))
        else:
            self.chain.broadcast(SignedTx(epoch.tx_hash, epoch.nonce, epoch.raw_tx))

    def _mined(self, epoch: SettlementEpoch, contracts: dict):
        settled_by = self._settled_by(epoch.id, contracts)
        tx_hash = settled_by or epoch.tx_hash
        receipt = self.chain.wait(tx_hash, self.settings.chain_confirmations)
        if receipt.status != 1:
            with self.engine.begin() as conn:
                conn.execute(
                    EPOCHS.update().where(EPOCHS.c.id == epoch.id)
                    .values(status="open", tx_hash=None, nonce=None, raw_tx=None, submitted_at=None)
                )  # fmt: skip
            raise ChainError(
                f"settlement transaction {tx_hash} of epoch {epoch.id} reverted; the epoch is open again"
            )
        return receipt

    def _confirm(self, epoch_id: int, receipt) -> None:
        tx_hash = Web3.to_hex(receipt.transactionHash)
        with self.engine.begin() as conn:
            epoch = conn.execute(select(EPOCHS).where(EPOCHS.c.id == epoch_id)).first()
            if epoch.status == "confirmed":
                return
            burn = burn_op(
                SETTLING,
                epoch.total,
                f"settle:{self.chain_id}:{epoch_id}:paid",
                f"epoch {epoch_id} paid in {tx_hash}",
            )
            (result,) = self.ledger.post_many([burn], conn)
            if isinstance(result, Exception):
                raise result
            conn.execute(
                EPOCHS.update().where(EPOCHS.c.id == epoch_id)
                .values(status="confirmed", tx_hash=tx_hash, block_number=receipt.blockNumber,
                        gas_used=receipt.gasUsed, confirmed_at=utcnow())
            )  # fmt: skip

    def _settled_by(self, epoch_id: int, contracts: dict) -> str | None:
        """The hash of the transaction that settled this epoch on chain, if one did."""
        settlement = self.settlement(contracts)
        if not settlement.functions.settled(epoch_id).call():
            return None
        for log in self._logs(settlement.events.EpochSettled(), contracts["block"], {"epoch": epoch_id}):
            return Web3.to_hex(log.transactionHash)
        return None

    def _unfinished(self) -> SettlementEpoch | None:
        with self.ledger.reads.connect() as conn:
            row = conn.execute(
                select(EPOCHS.c.id)
                .where(EPOCHS.c.chain_id == self.chain_id, EPOCHS.c.status != "confirmed")
                .order_by(EPOCHS.c.id)
            ).first()
        return None if row is None else self._epoch(row.id)

    def _epoch(self, epoch_id: int) -> SettlementEpoch:
        with self.ledger.reads.connect() as conn:
            row = conn.execute(select(EPOCHS).where(EPOCHS.c.id == epoch_id)).first()
        return SettlementEpoch(**row._asdict())

    # --- deposits ---------------------------------------------------------------------------

    def scan_deposits(self) -> list[dict]:
        """Credit every confirmed deposit since the last scan, exactly once."""
        contracts = self.contracts()
        key = f"deposits:{self.chain_id}:{contracts['settlement']}"
        cursor = (self._state(key) or {"block": contracts["block"] - 1})["block"]
        head = self.chain.w3.eth.block_number - self.settings.chain_confirmations + 1
        if head <= cursor:
            return []
        event = self.token(contracts).events.Transfer()
        logs = [
            log for log in self._logs(event, cursor + 1, {"to": contracts["settlement"]}, head)
            if log.args["from"] != ZERO  # reserve minting, not a deposit
        ]  # fmt: skip
        with self.ledger.reads.connect() as conn:
            linked = {r.address: r.account_id for r in conn.execute(select(ADDRESSES))}
        credited, ops = [], []
        for log in logs:
            sender = Web3.to_checksum_address(log.args["from"])
            account = linked.get(sender) or sender.lower()
            self.ledger.open_account(account)  # idempotent; an unlinked sender gets one named by address
            tx_hash = Web3.to_hex(log.transactionHash)
            ops.append(mint_op(account, log.args["value"], deposit_key(self.chain_id, tx_hash, log.logIndex),
                               f"deposit {tx_hash}"))  # fmt: skip
            credited.append({"account": account, "amount": log.args["value"], "tx_hash": tx_hash,
                             "log_index": log.logIndex, "block": log.blockNumber})  # fmt: skip
        with self.engine.begin() as conn:
            results = self.ledger.post_many(ops, conn) if ops else []
            for result in results:
                if isinstance(result, Exception):
                    raise result
            self._set_state(conn, key, {"block": head})
        return [c for c, r in zip(credited, results, strict=True) if not r.replayed]

    # --- reconciliation ---------------------------------------------------------------------

    def reconcile(self) -> tuple[list[str], list[str]]:
        """(differences, facts): every way ledger and chain disagree, and the balances compared."""
        contracts = self.contracts(deploy=False)
        token, settlement = self.token(contracts), self.settlement(contracts)
        differences: list[str] = []
        on_chain = {
            log.args["epoch"]: log
            for log in self._logs(settlement.events.EpochSettled(), contracts["block"], None)
        }
        with self.ledger.reads.connect() as conn:
            epochs = conn.execute(
                select(EPOCHS).where(EPOCHS.c.chain_id == self.chain_id).order_by(EPOCHS.c.id)
            ).all()
            lines = conn.execute(select(LINES)).all()
        by_epoch: dict[int, dict[str, int]] = {}
        for line in lines:
            by_epoch.setdefault(line.epoch_id, {})[line.address] = line.amount
        for e in epochs:
            log = on_chain.pop(e.id, None)
            if e.status != "confirmed":
                if log is not None:
                    differences.append(f"epoch {e.id}: settled on chain ({Web3.to_hex(log.transactionHash)}) but {e.status} "
                                       "in the ledger: run `prsm ftns settle`")  # fmt: skip
                continue
            if log is None:
                differences.append(
                    f"epoch {e.id}: confirmed in the ledger ({e.tx_hash}) but not settled on chain"
                )
                continue
            receipt = self.chain.receipt(Web3.to_hex(log.transactionHash))
            paid: dict[str, int] = {}
            for t in token.events.Transfer().process_receipt(receipt, errors=DISCARD):
                if t.args["from"] == contracts["settlement"]:
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

        key = f"deposits:{self.chain_id}:{contracts['settlement']}"
        cursor = (self._state(key) or {"block": contracts["block"] - 1})["block"]
        chain_deposits = {}
        if cursor >= contracts["block"]:
            for log in self._logs(
                token.events.Transfer(), contracts["block"], {"to": contracts["settlement"]}, cursor
            ):
                if log.args["from"] != ZERO:
                    chain_deposits[
                        deposit_key(self.chain_id, Web3.to_hex(log.transactionHash), log.logIndex)
                    ] = log.args["value"]
        prefix = f"deposit:{self.chain_id}:"
        with self.ledger.reads.connect() as conn:
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
        reserve = token.functions.balanceOf(contracts["settlement"]).call()
        facts = [
            f"chain {self.chain_id}: token {contracts['token']}, settlement {contracts['settlement']}",
            f"reserve on chain: {format_ftns(reserve)}",
            f"ledger balances (all accounts but issuance): {format_ftns(self.ledger.total())}",
            f"epochs: {len(epochs)} ({sum(e.status == 'confirmed' for e in epochs)} confirmed), "
            f"deposits credited: {len(ledger_deposits)}, scanned through block {cursor}",
        ]
        return differences, facts

    # --- helpers ----------------------------------------------------------------------------

    def _logs(self, event, from_block: int, filters: dict | None, to_block: int | None = None):
        to_block = self.chain.w3.eth.block_number if to_block is None else to_block
        for start in range(from_block, to_block + 1, LOG_RANGE):
            end = min(start + LOG_RANGE - 1, to_block)
            yield from event.get_logs(from_block=start, to_block=end, argument_filters=filters)

    def _state(self, key: str) -> dict | None:
        with self.ledger.reads.connect() as conn:
            return conn.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()

    def _set_state(self, conn, key: str, value: dict) -> None:
        if conn.execute(select(STATE.c.key).where(STATE.c.key == key)).first() is None:
            conn.execute(STATE.insert(), [{"key": key, "value": value}])
        else:
            conn.execute(STATE.update().where(STATE.c.key == key).values(value=value, updated_at=utcnow()))


def deposit_key(chain_id: int, tx_hash: str, log_index: int) -> str:
    return f"deposit:{chain_id}:{tx_hash}:{log_index}"
