"""What settling the ledger on chain costs, against paying every query on chain.

In one run, against a real anvil node (npm @foundry-rs/anvil-linux-amd64) started on loopback:
  - gas: 10,000 paid queries spread over 50 model owners (each capture pays owner / operator /
    treasury with PRSM's split), settled in one epoch (one `settle` transaction paying the 50
    owners and the operator), against the same 10,000 queries each paid with its own ERC-20
    transfer to its owner (measured: all 10,000 transfers are executed). The baseline counts one
    transfer per query, the fewest a per-query payment needs, so the ratio is conservative.
    Target (issue 3): settlement gas / per-query gas <= 1%.
  - throughput: payees settled per second (open the epoch in the ledger, sign, send, wait for
    the receipt, confirm in the ledger), against the same payees paid one ERC-20 transfer each,
    sequentially (sign, send, receipt).

    python benchmarks/settlement.py [--quick]
Writes benchmarks/results/settlement.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.services (the anvil starter)
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.chain.client import Chain  # noqa: E402
from prsm.chain.contracts import Contracts  # noqa: E402
from prsm.chain.epochs import Settler  # noqa: E402
from prsm.chain.links import link  # noqa: E402
from prsm.ftns.ledger import Ledger, capture_op, hold_op  # noqa: E402
from prsm.ftns.pricing import Shares, split  # noqa: E402
from prsm.services import Services  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from prsm.types import ModelCard  # noqa: E402
from tests.services import anvil_node  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "settlement.json"
QUERIES, OWNERS = 10_000, 50
PRICE, FEE = 10**15, 10**14  # per call of each owner's model, and NWTN's fee: FTNS base units
MINE_EVERY = 400  # per-query transfers per mined block (anvil's block gas limit is 30M)


def services_for(url: str, key: str) -> Services:
    data = Path(tempfile.mkdtemp(prefix="prsm-settle-bench-"))
    settings = Settings(data_dir=data, _env_file=None, chain_url=url, chain_key=SecretStr(key))
    return Services.from_settings(settings, upgrade=True)


SHARES = Shares.from_settings(Settings(_env_file=None))  # the default split


def address(i: int, salt: int) -> str:
    return "0x" + f"{salt:08x}{i + 1:032x}"


def paid_queries(ledger: Ledger, owners: list[str]) -> dict[str, int]:
    """Run QUERIES hold + capture pairs through the ledger; return what each owner earned."""
    ledger.open_account("payer")
    ledger.mint("payer", 10**30, "bench-fund")
    cards = {
        o: ModelCard(f"model-{o}", "tool", "benchmark model", o, "MIT", price_per_call=PRICE) for o in owners
    }
    shares, earned = SHARES, {}
    for first in range(0, QUERIES, 500):
        batch = range(first, min(first + 500, QUERIES))
        ledger.post_many([hold_op("payer", PRICE + FEE, f"h{q}") for q in batch])
        captures = []
        for q in batch:
            card = cards[owners[q % len(owners)]]
            parts = split([(card, PRICE)], FEE, PRICE + FEE, shares, {})
            earned[card.owner] = earned.get(card.owner, 0) + parts[card.owner]
            captures.append(capture_op(hold_op("payer", PRICE + FEE, f"h{q}").hold_id, parts, f"c{q}"))
        ledger.post_many(captures)
    return earned


def rpc(url: str, method: str, params: list | None = None):
    body = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()
    if "error" in body:
        raise RuntimeError(body["error"])
    return body["result"]


def per_query_transfer_gas(chain: Chain, url: str, token, owners: list[str]) -> tuple[int, float]:
    """Execute one ERC-20 transfer per query (operator -> the query's owner); total gas used."""
    operator = chain.operator
    amount = PRICE * SHARES.owner_bps // 10_000
    chain.send(token.functions.mint(operator.address, amount * QUERIES))
    nonce = chain.w3.eth.get_transaction_count(operator.address)
    fees = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "gas": 80_000, "chainId": chain.chain_id}
    started = time.perf_counter()
    rpc(url, "evm_setAutomine", [False])
    total = 0
    try:
        for first in range(0, QUERIES, MINE_EVERY):
            batch = []
            for q in range(first, min(first + MINE_EVERY, QUERIES)):
                tx = token.functions.transfer(owners[q % len(owners)], amount).build_transaction(
                    {**fees, "from": operator.address, "nonce": nonce}
                )
                nonce += 1
                raw = "0x" + operator.sign_transaction(tx).raw_transaction.hex()
                batch.append({"jsonrpc": "2.0", "id": q, "method": "eth_sendRawTransaction", "params": [raw]})
            sent = httpx.post(url, json=batch, timeout=60).json()
            assert all("result" in r for r in sent), sent[:3]
            rpc(url, "evm_mine")
            receipts = rpc(url, "eth_getBlockReceipts", ["latest"])
            assert len(receipts) == len(batch) and all(r["status"] == "0x1" for r in receipts)
            total += sum(int(r["gasUsed"], 16) for r in receipts)
    finally:
        rpc(url, "evm_setAutomine", [True])
    return total, time.perf_counter() - started


def gas_ratio(url: str, keys: list[str]) -> dict:
    with services_for(url, keys[0]) as services:
        chain, ledger = services.chain, services.ledger
        contracts = Contracts(chain, ledger)
        contracts.fund_reserve(10**27)
        owners = [f"owner{i:02d}" for i in range(OWNERS)]
        t0 = time.perf_counter()
        paid_queries(ledger, owners)
        ledger_s = time.perf_counter() - t0
        for i, owner in enumerate(owners):
            link(ledger, owner, address(i, 1))
        link(ledger, SHARES.operator_account, address(OWNERS, 1))
        report = Settler(services.settings, contracts).settle()
        assert report.payees == OWNERS + 1, report
        token = contracts.token()
        addresses = [chain.w3.to_checksum_address(address(i, 2)) for i in range(OWNERS)]
        baseline, baseline_s = per_query_transfer_gas(chain, url, token, addresses)
    return {
        "queries": QUERIES,
        "owners": OWNERS,
        "ledger_seconds_for_queries": ledger_s,
        "settlement_payees": report.payees,
        "settlement_gas": report.gas_used,
        "per_query_transfers_gas": baseline,
        "per_query_transfer_gas_mean": baseline / QUERIES,
        "per_query_transfers_seconds": baseline_s,
        "settlement_vs_per_query_gas_ratio": report.gas_used / baseline,
    }


def throughput(url: str, keys: list[str], payees: int, salt: int) -> dict:
    with services_for(url, keys[0]) as services:
        chain, ledger = services.chain, services.ledger
        contracts = Contracts(chain, ledger)
        accounts = [f"p{salt}-{i}" for i in range(payees)]
        ledger.open_account("payer")
        ledger.mint("payer", 10**30, "fund")
        hold = ledger.hold("payer", 10**20, "h")
        ledger.capture(hold.hold_id, {a: 10**15 for a in accounts}, "c")
        for i, a in enumerate(accounts):
            link(ledger, a, address(i, salt))
        started = time.perf_counter()
        report = Settler(services.settings, contracts).settle()
        settle_s = time.perf_counter() - started
        assert report.payees == payees
        token = contracts.token()
        chain.send(token.functions.mint(chain.operator.address, 10**15 * payees))
        started = time.perf_counter()
        for i in range(payees):
            chain.send(token.functions.transfer(chain.w3.to_checksum_address(address(i, salt + 1)), 10**15))
        single_s = time.perf_counter() - started
    return {
        "payees": payees,
        "settle_seconds": settle_s,
        "settlement_payees_per_s": payees / settle_s,
        "settlement_gas": report.gas_used,
        "single_transfers_payees_per_s": payees / single_s,
        "settlement_vs_single_transfers_throughput_ratio": (payees / settle_s) / (payees / single_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="throughput for 100 payees only")
    args = parser.parse_args()
    sizes = (100,) if args.quick else (100, 500)
    with anvil_node() as (url, keys):
        gas = gas_ratio(url, keys)
        print(
            f"\n{QUERIES} queries over {OWNERS} owners: settlement {gas['settlement_gas']:,} gas "
            f"({gas['settlement_payees']} payees, one transaction) vs {gas['per_query_transfers_gas']:,} gas "
            f"for one ERC-20 transfer per query: ratio {gas['settlement_vs_per_query_gas_ratio']:.4%} (target <= 1%)"
        )
        rows = [throughput(url, keys, n, 16 + i * 2) for i, n in enumerate(sizes)]
    print(f"\n{'payees':>7} | {'settle s':>8} {'payees/s':>9} | {'1 tx each/s':>11} | ratio")
    for r in rows:
        print(
            f"{r['payees']:>7} | {r['settle_seconds']:>8.2f} {r['settlement_payees_per_s']:>9.0f} | "
            f"{r['single_transfers_payees_per_s']:>11.1f} | {r['settlement_vs_single_transfers_throughput_ratio']:.1f}"
        )
    result = {
        "benchmark": "settlement",
        "quick": args.quick,
        "chain": "anvil 1.7.1 (npm @foundry-rs/anvil-linux-amd64), automine",
        "machine": machine(),
        "gas": gas,
        "settlement_vs_per_query_gas_ratio": gas["settlement_vs_per_query_gas_ratio"],
        "throughput": rows,
        **{
            f"throughput_{r['payees']}_payees_ratio": r["settlement_vs_single_transfers_throughput_ratio"]
            for r in rows
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
