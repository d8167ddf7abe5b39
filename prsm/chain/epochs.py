"""Settlement epochs: each payee's earnings since the last epoch, paid in one chain transaction
(FTNSSettlement.settle, a batch transfer; the contract explains why not a Merkle root).

Each step is a database state, so a settler killed anywhere and run again pays every payee
exactly once:

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, select, text
from web3 import Web3

from prsm import metrics
from prsm.chain.client import SignedTx
from prsm.chain.contracts import Contracts
from prsm.chain.links import ADDRESSES
from prsm.db.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerHold,
    LedgerTransaction,
    SettlementEpoch,
    SettlementLine,
    as_utc,
    utcnow,
)
from prsm.errors import ChainError
from prsm.ftns.amounts import format_ftns
from prsm.ftns.ledger import SETTLING, OpKind, burn_op, transfer_op
from prsm.settings import Settings

EPOCHS, LINES = SettlementEpoch.__table__, SettlementLine.__table__
ENTRIES, TXNS, HOLDS = LedgerEntry.__table__, LedgerTransaction.__table__, LedgerHold.__table__
ACCOUNTS = LedgerAccount.__table__


class EpochStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"


class SettleStep(StrEnum):
    """What `settle` reports as it goes (the CLI prints each)."""

    OPENED = "opened"
    SIGNED = "signed"
    SENT = "sent"
    MINED = "mined"
    CONFIRMED = "confirmed"


@dataclass
class EpochReport:
    epoch: int
    status: EpochStatus
    payees: int
    total: int
    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None
    lines: list[tuple[str, str, int]] = field(default_factory=list)  # account, address, amount


class Settler:
    def __init__(self, settings: Settings, contracts: Contracts):
        self.settings = settings
        self.contracts = contracts
        self.chain = contracts.chain
        self.ledger = contracts.ledger
        self.chain_id = contracts.chain_id

    def settle(self, on_step: Callable[[SettleStep], None] | None = None) -> EpochReport | None:
        """Finish the unfinished epoch, or open and settle a new one. None: nothing to pay."""
        try:
            report = self._settle(on_step)
        except Exception:
            metrics.SETTLEMENT_EPOCHS.inc(outcome="failed")
            raise
        metrics.SETTLEMENT_EPOCHS.inc(outcome="nothing to pay" if report is None else "confirmed")
        metrics.SETTLEMENT_LAG.set(unsettled_age_s(self.ledger.engine))
        return report

    def _settle(self, on_step: Callable[[SettleStep], None] | None) -> EpochReport | None:
        step = on_step or (lambda name: None)
        addresses = self.contracts.addresses()
        epoch = self._unfinished()
        if epoch is None:
            epoch = self._open()
            if epoch is None:
                return None
            step(SettleStep.OPENED)
        if epoch.status == EpochStatus.OPEN:
            tx = self._sign(epoch, addresses)
            step(SettleStep.SIGNED)
            self.chain.broadcast(tx)
            step(SettleStep.SENT)
        else:
            self._resend(self._epoch(epoch.id), addresses)
        receipt = self._mined(self._epoch(epoch.id), addresses)
        step(SettleStep.MINED)
        self._confirm(epoch.id, receipt)
        step(SettleStep.CONFIRMED)
        return self.report(epoch.id)

    def report(self, epoch_id: int) -> EpochReport:
        e = self._epoch(epoch_id)
        with self.ledger.reads.connect() as conn:
            lines = conn.execute(
                select(LINES.c.account_id, LINES.c.address, LINES.c.amount)
                .where(LINES.c.epoch_id == epoch_id)
                .order_by(LINES.c.account_id)
            ).all()
        return EpochReport(e.id, EpochStatus(e.status), e.payees, e.total, e.tx_hash, e.block_number, e.gas_used,
                           [tuple(line) for line in lines])  # fmt: skip

    def _open(self) -> SettlementEpoch | None:
        with self.ledger.engine.begin() as conn:
            if self.ledger.postgres:  # entries of in-flight transactions must not slip below the cut
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
                .where(TXNS.c.kind.in_((OpKind.CAPTURE, OpKind.CREDIT)))
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
                    status=EpochStatus.OPEN,
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

    def _sign(self, epoch: SettlementEpoch, addresses: dict, nonce: int | None = None) -> SignedTx:
        reserve = self.contracts.token(addresses).functions.balanceOf(addresses["settlement"]).call()
        if reserve < epoch.total:
            raise ChainError(
                f"the settlement reserve holds {format_ftns(reserve)}, epoch {epoch.id} needs "
                f"{format_ftns(epoch.total)}: fund it (prsm ftns reserve AMOUNT) and run settle again"
            )
        lines = self.report(epoch.id).lines
        call = self.contracts.settlement(addresses).functions.settle(
            epoch.id, [Web3.to_checksum_address(a) for _, a, _ in lines], [v for _, _, v in lines]
        )
        tx = self.chain.sign(call, nonce=nonce)
        with self.ledger.engine.begin() as conn:  # recorded before it is sent: a crash cannot lose it
            conn.execute(
                EPOCHS.update().where(EPOCHS.c.id == epoch.id)
                .values(status=EpochStatus.SUBMITTED, tx_hash=tx.hash, nonce=tx.nonce, raw_tx=tx.raw,
                        submitted_at=utcnow())
            )  # fmt: skip
        return tx

    def _resend(self, epoch: SettlementEpoch, addresses: dict) -> None:
        if self.chain.receipt(epoch.tx_hash) is not None or self._settled_by(epoch.id, addresses):
            return
        used = self.chain.w3.eth.get_transaction_count(self.chain.operator.address, "latest")
        if used > epoch.nonce:  # our nonce went to another transaction: sign again, next nonce
            self.chain.broadcast(self._sign(epoch, addresses))
        else:
            self.chain.broadcast(SignedTx(epoch.tx_hash, epoch.nonce, epoch.raw_tx))

    def _mined(self, epoch: SettlementEpoch, addresses: dict):
        settled_by = self._settled_by(epoch.id, addresses)
        tx_hash = settled_by or epoch.tx_hash
        receipt = self.chain.wait(tx_hash, self.settings.chain_confirmations)
        if receipt.status != 1:
            with self.ledger.engine.begin() as conn:
                conn.execute(
                    EPOCHS.update().where(EPOCHS.c.id == epoch.id)
                    .values(status=EpochStatus.OPEN, tx_hash=None, nonce=None, raw_tx=None, submitted_at=None)
                )  # fmt: skip
            raise ChainError(
                f"settlement transaction {tx_hash} of epoch {epoch.id} reverted; the epoch is open again"
            )
        return receipt

    def _confirm(self, epoch_id: int, receipt) -> None:
        tx_hash = Web3.to_hex(receipt.transactionHash)
        with self.ledger.engine.begin() as conn:
            epoch = conn.execute(select(EPOCHS).where(EPOCHS.c.id == epoch_id)).first()
            if epoch.status == EpochStatus.CONFIRMED:
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
                .values(status=EpochStatus.CONFIRMED, tx_hash=tx_hash, block_number=receipt.blockNumber,
                        gas_used=receipt.gasUsed, confirmed_at=utcnow())
            )  # fmt: skip

    def _settled_by(self, epoch_id: int, addresses: dict) -> str | None:
        """The hash of the transaction that settled this epoch on chain, if one did."""
        settlement = self.contracts.settlement(addresses)
        if not settlement.functions.settled(epoch_id).call():
            return None
        event = settlement.events.EpochSettled()
        for log in self.contracts.logs(event, addresses["block"], {"epoch": epoch_id}):
            return Web3.to_hex(log.transactionHash)
        return None

    def _unfinished(self) -> SettlementEpoch | None:
        with self.ledger.reads.connect() as conn:
            row = conn.execute(
                select(EPOCHS.c.id)
                .where(EPOCHS.c.chain_id == self.chain_id, EPOCHS.c.status != EpochStatus.CONFIRMED)
                .order_by(EPOCHS.c.id)
            ).first()
        return None if row is None else self._epoch(row.id)

    def _epoch(self, epoch_id: int) -> SettlementEpoch:
        with self.ledger.reads.connect() as conn:
            row = conn.execute(select(EPOCHS).where(EPOCHS.c.id == epoch_id)).first()
        return SettlementEpoch(**row._asdict())


def unsettled_age_s(engine) -> float:
    """Settlement lag: seconds since the oldest earning of an account with a chain address that
    no confirmed epoch has paid yet (an entry past its account's cursor, or in an epoch not yet
    confirmed); 0 when everything earned is settled."""
    with engine.connect() as conn:
        past_cursor = conn.execute(
            select(func.min(ENTRIES.c.created_at))
            .join(TXNS, TXNS.c.id == ENTRIES.c.transaction_id)
            .join(ADDRESSES, ADDRESSES.c.account_id == ENTRIES.c.account_id)
            .where(ENTRIES.c.id > ADDRESSES.c.settled_through, ENTRIES.c.amount > 0)
            .where(TXNS.c.kind.in_((OpKind.CAPTURE, OpKind.CREDIT)))
        ).scalar()
        unconfirmed = conn.execute(
            select(func.min(EPOCHS.c.created_at)).where(EPOCHS.c.status != EpochStatus.CONFIRMED)
        ).scalar()
    oldest = [as_utc(t) for t in (past_cursor, unconfirmed) if t is not None]
    return max(0.0, (utcnow() - min(oldest)).total_seconds()) if oldest else 0.0
