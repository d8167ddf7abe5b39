"""One web3.py client for every chain PRSM talks to.

- Embedded default: the in-process EVM (eth-tester + py-evm). It lives in this process, so every
  raw transaction sent to it is appended to a journal file first (fsync) and replayed into a
  fresh EVM when the next process connects: the same signed transactions give the same state,
  addresses and transaction hashes. The journal is locked while a process uses it.
- Any JSON-RPC node (anvil in the tests, a real network in production): `PRSM_CHAIN_URL`.

The operator's key comes from `PRSM_CHAIN_KEY` (hex) or a keystore file (`PRSM_CHAIN_KEYSTORE`,
password in `PRSM_CHAIN_KEYSTORE_PASSWORD`); on the in-process chain it is the EVM's first
pre-funded development key. Keys are never logged or stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import TransactionNotFound

from prsm.chain.signing import operator_key
from prsm.errors import ChainError

DEV_CHAIN_ID = 31337


@cache
def artifact(name: str) -> dict:
    """ABI and bytecode compiled from contracts/src (contracts/compile.js)."""
    text = resources.files("prsm.chain").joinpath("artifacts", f"{name}.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class SignedTx:
    hash: str
    nonce: int
    raw: str  # 0x-hex of the signed transaction


class Chain:
    def __init__(
        self, w3: Web3, operator: LocalAccount, journal: Path | None = None, token: str | None = None
    ):
        self.w3 = w3
        self.operator = operator
        self.token = token  # the network's FTNS token a joining node uses (PRSM_FTNS_TOKEN)
        self._journal = journal
        self._lock_file = None
        if journal is not None:
            self._replay(journal)

    # --- connecting -------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings) -> Chain:
        if settings.chain_url:
            w3 = Web3(HTTPProvider(settings.chain_url, request_kwargs={"timeout": 30}))
            if not w3.is_connected():
                raise ChainError(f"no chain node answers at {settings.chain_url}", "chain_url")
            return cls(w3, operator_key(settings), token=settings.ftns_token)
        return cls.in_process(settings.data_dir / "chain" / "journal.jsonl")

    @classmethod
    def in_process(cls, journal: Path | None = None) -> Chain:
        w3 = Web3(EthereumTesterProvider())
        key = w3.provider.ethereum_tester.backend.account_keys[0]
        return cls(w3, Account.from_key(key), journal)

    def dev_account(self, index: int) -> LocalAccount:
        """A pre-funded development account of the in-process chain (tests, demos)."""
        return Account.from_key(self.w3.provider.ethereum_tester.backend.account_keys[index])

    def _replay(self, journal: Path) -> None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(journal, "a+")  # noqa: SIM115 (held open: it carries the lock)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.close()
            raise ChainError(
                f"another PRSM process is using the embedded chain ({journal}); wait for it to finish"
            ) from exc
        self._lock_file.seek(0)
        entries = [json.loads(line) for line in self._lock_file if line.strip()]
        refused = {e["refused"] for e in entries if "refused" in e}
        for entry in entries:
            if "raw" in entry and entry["hash"] not in refused:
                with contextlib.suppress(Exception):  # e.g. a resend of one already replayed
                    self.w3.eth.send_raw_transaction(entry["raw"])

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    @property
    def is_dev(self) -> bool:
        """The in-process EVM, or a local development node (anvil and hardhat use chain id 31337)."""
        return isinstance(self.w3.provider, EthereumTesterProvider) or self.chain_id == DEV_CHAIN_ID

    # --- transactions -----------------------------------------------------------------------

    def sign(self, call, account: LocalAccount | None = None, nonce: int | None = None) -> SignedTx:
        """Build and sign a contract call or deployment; gas is estimated (a call that would
        revert fails here, before anything is sent)."""
        account = account or self.operator
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        try:
            tx = call.build_transaction({"from": account.address, "nonce": nonce})
        except Exception as exc:
            raise ChainError(f"the chain refuses this transaction: {exc}") from exc
        signed = account.sign_transaction(tx)
        return SignedTx(Web3.to_hex(signed.hash), nonce, Web3.to_hex(signed.raw_transaction))

    def broadcast(self, tx: SignedTx) -> None:
        """Send a signed transaction. Sending one the node already has or has mined is not an
        error: the caller looks for its receipt."""
        if self._lock_file is not None:
            self._lock_file.write(json.dumps({"hash": tx.hash, "raw": tx.raw}) + "\n")
            self._lock_file.flush()
            os.fsync(self._lock_file.fileno())
        try:
            self.w3.eth.send_raw_transaction(tx.raw)
        except Exception as exc:
            if self.receipt(tx.hash) is None and not _already_known(exc):
                if self._lock_file is not None:  # not part of the chain: never replay it
                    self._lock_file.write(json.dumps({"refused": tx.hash}) + "\n")
                    self._lock_file.flush()
                raise ChainError(f"the node refused transaction {tx.hash}: {exc}") from exc

    def receipt(self, tx_hash: str):
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def wait(self, tx_hash: str, confirmations: int = 1, timeout: float = 120.0):
        """The receipt once the transaction has `confirmations` blocks on top (its own included)."""
        deadline = time.monotonic() + timeout
        pause = 0.005  # a dev node mines at once; a real chain takes seconds: back off to 1 s
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None and self.w3.eth.block_number - receipt.blockNumber + 1 >= confirmations:
                return receipt
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {tx_hash} not confirmed after {timeout:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def send(self, call, account: LocalAccount | None = None, confirmations: int = 1):
        """Sign, send and wait: for deployments, funding and tests. Settlement uses the steps."""
        tx = self.sign(call, account)
        self.broadcast(tx)
        receipt = self.wait(tx.hash, confirmations)
        if receipt.status != 1:
            raise ChainError(f"transaction {tx.hash} reverted")
        return receipt

    # --- contracts --------------------------------------------------------------------------

    def contract(self, name: str, address: str | None = None):
        spec = artifact(name)
        if address is None:
            return self.w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=spec["abi"])

    def deploy(self) -> dict:
        """Deploy the settlement contract owned by the operator, with the network's FTNS token
        (`self.token`) or with a new token of this operator's."""
        if self.token is not None:
            if not self.has_code(self.token):
                raise ChainError(
                    f"PRSM_FTNS_TOKEN names {self.token}, but the chain has no contract there", "ftns_token"
                )
            token, block = Web3.to_checksum_address(self.token), None
        else:
            receipt = self.send(self.contract("FTNSToken").constructor(self.operator.address))
            token, block = receipt.contractAddress, receipt.blockNumber
        settlement = self.send(self.contract("FTNSSettlement").constructor(token, self.operator.address))
        return {"token": token, "settlement": settlement.contractAddress,
                "block": settlement.blockNumber if block is None else block}  # fmt: skip

    def has_code(self, address: str) -> bool:
        return len(self.w3.eth.get_code(Web3.to_checksum_address(address))) > 0


def _already_known(exc: Exception) -> bool:
    text = str(exc).lower()
    return "already known" in text or "already imported" in text
