"""What a federated sub-task costs over the same model served locally, and what settling the debts
between nodes costs on chain against paying each call on chain (issue 15).

Two PRSM nodes in this process, each its own database, block store, ledger and orchestrator; node B
behind its own HTTP server on loopback (PRSM's FastAPI setup, uvicorn); one in-process EVM with
one FTNS token, a settlement contract per node and the node registry. A follows B and offers B's
models as peer cards, as `prsm federation sync` does.

(1) Latency and CPU, taking turns: the same sub-task call on A's model and on B's (one loaded
    model hosted by both, so only the path differs) through a signed peer call (A signs, HTTP, B checks the signature and membership, holds and
    captures in its ledger, runs the model, A checks the charge). Wall time per call, and this
    process's CPU per call: both nodes run in it, so the federated CPU counts both sides.
    - the default language model (SmolLM2-135M-Instruct, greedy), a general sub-task: target
      federated p50 <= 1.5 x local p50 (the issue's), and the answers must be identical;
    - the units tool (a call of a few milliseconds, where the hop's fixed cost shows): reported.
(2) Gas: K paid units calls through the peer (chat completions of A's user: A bills its user and
    owes B what B charged; B bills A), then one settlement epoch of A (its `settle` transaction,
    paying B's settlement contract what A owes for every federated call of the run), against one
    ERC-20 transfer per call (the gas of a transfer to the same contract, measured on 5 real
    transfers, times K). Target: <= 1 %; the ratio falls with the calls an epoch covers, so the
    calls at which it reaches 1 % are reported too. The two ledgers must agree on what A owes B
    to the base unit; after the epoch B credits the payment to A's account, both are back to
    zero, and both reconcile with the chain.

    python benchmarks/federation.py [--quick]
Writes benchmarks/results/federation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.services
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.chain.client import Chain  # noqa: E402
from prsm.chain.contracts import Contracts  # noqa: E402
from prsm.chain.deposits import scan_deposits  # noqa: E402
from prsm.chain.epochs import Settler  # noqa: E402
from prsm.chain.reconcile import reconcile  # noqa: E402
from prsm.federation import catalogue, follow, market, node  # noqa: E402
from prsm.federation.registry import NodeRegistry  # noqa: E402
from prsm.ftns.ledger import peer_account  # noqa: E402
from prsm.nwtn.execute import messages_for  # noqa: E402
from prsm.nwtn.orchestrator import Orchestrator  # noqa: E402
from prsm.nwtn.remote import ModelClient  # noqa: E402
from prsm.registry import DEFAULT_MODEL_ID  # noqa: E402
from prsm.services import Services  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from prsm.types import Capability, ModelCall, SubTask  # noqa: E402
from tests.services import FederationServer, free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "federation.json"
MODEL_DIR = Path.home() / ".prsm" / "models"
LATENCY_TARGET, GAS_TARGET = 1.5, 0.01
LM_TASK = SubTask(
    "t1", "Explain in one sentence what entropy measures in thermodynamics.", Capability.GENERAL
)
UNITS_TASK = SubTask("t1", "Convert 3 km to miles.", Capability.UNITS)
PAYER = "bench-user"  # node A's user


def node_services(root: Path, name: str, key) -> Services:
    settings = Settings(data_dir=root / name, model_dir=MODEL_DIR, _env_file=None, chain_key=key.key.hex(),
                        egress_allow=["127.0.0.1"])  # fmt: skip
    services = Services.from_settings(settings, upgrade=True)
    services.registry.ensure_defaults()
    services.prepare_default_model()  # converted once, shared through the model folder
    return services


def orchestrator(services: Services) -> Orchestrator:
    """NWTN's model calls as the app wires them (prsm/nwtn/remote.py), on this process's models."""
    models = services.models
    call = ModelClient(
        heavy=lambda m: lambda c: models.run(m, c), light=lambda m: lambda cs: models.run_many(m, cs)
    )
    return Orchestrator(services.settings, services.registry, services.sessions, services.billing, None, call)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def turns(a: Orchestrator, local, peer, call: ModelCall, rounds: int) -> dict:
    """Local and federated calls taking turns: wall ms and process CPU ms of each, and their texts.
    A federated call's charge is then recorded in A's ledger as a query's capture records it (the
    peer's account is owed it), outside the timing: a sub-task's own latency has no capture."""
    out = {
        "local": {"ms": [], "cpu_ms": [], "texts": set()},
        "federated": {"ms": [], "cpu_ms": [], "texts": set()},
    }
    for i in range(rounds):
        for side, card in (
            (("local", local), ("federated", peer)) if i % 2 == 0 else (("federated", peer), ("local", local))
        ):
            t0, c0 = time.perf_counter(), time.process_time()
            output = await a.bounded_call(card, call)
            out[side]["ms"].append((time.perf_counter() - t0) * 1000)
            out[side]["cpu_ms"].append((time.process_time() - c0) * 1000)
            out[side]["texts"].add(output.text)
            if output.charged:
                key = f"bench:{time.time_ns()}"
                ledger = a.billing.ledger
                hold = ledger.hold(PAYER, output.charged, f"{key}:hold")
                ledger.capture(hold.hold_id, {peer.owner: output.charged}, f"{key}:capture")
    return out


def summary(name: str, measured: dict) -> dict:
    local, fed = measured["local"], measured["federated"]
    row = {
        f"{name}_calls_each": len(local["ms"]),
        f"{name}_local_p50_ms": round(statistics.median(local["ms"]), 2),
        f"{name}_federated_p50_ms": round(statistics.median(fed["ms"]), 2),
        f"{name}_local_p99_ms": round(percentile(local["ms"], 0.99), 2),
        f"{name}_federated_p99_ms": round(percentile(fed["ms"], 0.99), 2),
        f"{name}_local_cpu_ms": round(statistics.median(local["cpu_ms"]), 2),
        f"{name}_federated_cpu_ms": round(statistics.median(fed["cpu_ms"]), 2),
        f"{name}_same_answers": local["texts"] == fed["texts"] and len(local["texts"]) == 1,
    }
    row[f"{name}_latency_ratio"] = round(row[f"{name}_federated_p50_ms"] / row[f"{name}_local_p50_ms"], 4)
    row[f"{name}_added_ms"] = round(row[f"{name}_federated_p50_ms"] - row[f"{name}_local_p50_ms"], 2)
    row[f"{name}_added_cpu_ms"] = round(row[f"{name}_federated_cpu_ms"] - row[f"{name}_local_cpu_ms"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and tokens (a few minutes)")
    args = parser.parse_args()
    lm_rounds, lm_tokens = (6, 24) if args.quick else (12, 48)
    tool_rounds, epoch_calls = (40, 500) if args.quick else (100, 1000)

    root = Path(tempfile.mkdtemp(prefix="prsm-federation-"))
    with Chain.in_process() as chain_a:
        b_key = chain_a.dev_account(1)
        a, b = node_services(root, "a", chain_a.operator), node_services(root, "b", b_key)
        contracts_a = Contracts(chain_a, a.ledger)
        token = contracts_a.addresses()["token"]  # A's token is the network's; B joins with it
        chain_b = Chain(chain_a.w3, b_key, token=token)
        contracts_b = Contracts(chain_b, b.ledger)
        nodes_a = NodeRegistry(contracts_a, a.db)
        nodes_b = NodeRegistry(contracts_b, b.db, nodes_a.address(deploy=True)["registry"])
        nwtn_a, nwtn_b = orchestrator(a), orchestrator(b)
        server_b = FederationServer(b, nwtn_b, free_port())
        server_b.start()
        for services, nodes, contracts, url in ((b, nodes_b, contracts_b, server_b.url),
                                                 (a, nodes_a, contracts_a, "http://127.0.0.1:9")):  # fmt: skip
            paid = contracts.addresses()
            operator = contracts.chain.operator.address
            doc = catalogue.build(
                services.registry, operator, chain_a.chain_id, paid["token"], paid["settlement"]
            )
            cid = catalogue.publish(a.store, doc)  # both stores: as if through one IPFS network
            catalogue.publish(b.store, doc)
            nodes.announce(url, cid)
            node.save_record(services.db, {"operator": operator, "endpoint": url, "catalogue": cid,
                                           "chain_id": chain_a.chain_id, "announced": True})  # fmt: skip
        follow.follow(nodes_a, a.store, a.registry, a.settings)
        follow.follow(nodes_b, b.store, b.registry, b.settings)
        b_operator = chain_b.operator.address

        a.ledger.open_account(PAYER)
        a.ledger.mint(PAYER, 10**18, "bench-faucet")

        async def measure() -> dict:
            local_lm = a.registry.get(DEFAULT_MODEL_ID)
            peer_lm = a.registry.get(market.card_id(b_operator, DEFAULT_MODEL_ID))
            lm_call = ModelCall(messages_for(LM_TASK, LM_TASK.instruction), lm_tokens)
            print("loading the model (one copy, hosted by both nodes) ...", flush=True)
            # The same weights in memory for both: the difference measured is the hop alone.
            b.models.host(DEFAULT_MODEL_ID, await a.models.backend(DEFAULT_MODEL_ID))
            await turns(nwtn_a, local_lm, peer_lm, lm_call, 2)  # warm both paths (connections, caches)
            print(f"language model: {lm_rounds} calls each, {lm_tokens} new tokens ...", flush=True)
            lm = summary("lm", await turns(nwtn_a, local_lm, peer_lm, lm_call, lm_rounds))
            local_units = a.registry.get("pint-units")
            peer_units = a.registry.get(market.card_id(b_operator, "pint-units"))
            units_call = ModelCall(messages_for(UNITS_TASK, UNITS_TASK.instruction), 16)
            await turns(nwtn_a, local_units, peer_units, units_call, 4)
            print(f"units tool: {tool_rounds} calls each ...", flush=True)
            tool = summary("tool", await turns(nwtn_a, local_units, peer_units, units_call, tool_rounds))
            # The epoch's calls are paid ones: chat completions of A's user on B's tool, each
            # billed by A (the user pays A; A owes B what B charged) and by B (A's account there).
            print(f"{epoch_calls} paid units calls through the peer for one epoch ...", flush=True)
            for _ in range(epoch_calls):
                await nwtn_a.complete(peer_units.id, list(units_call.messages), 16, None, PAYER)
            return lm | tool

        figures = asyncio.run(measure())
        server_b.stop()
        a_operator = chain_a.operator.address
        owed_by_a = a.ledger.balance(peer_account(b_operator))
        billed_by_b = -b.ledger.balance(peer_account(a_operator))
        report = Settler(a.settings, contracts_a).settle()
        credited = scan_deposits(contracts_b, 1)  # B credits what A's epoch paid it
        transfer_gas = []
        addresses_b = contracts_b.addresses()
        tok = contracts_a.token()
        chain_a.send(tok.functions.mint(chain_a.operator.address, 10**18))
        for _ in range(5):
            receipt = chain_a.send(tok.functions.transfer(addresses_b["settlement"], 10**12))
            transfer_gas.append(receipt.gasUsed)
        per_call = statistics.mean(transfer_gas)
        figures |= {
            "epoch_calls": epoch_calls,
            "epoch_payees": report.payees,
            "epoch_gas": report.gas_used,
            "transfer_gas": round(per_call, 1),
            "per_call_transfers_gas": round(per_call * epoch_calls),
            "gas_ratio": round(report.gas_used / (per_call * epoch_calls), 6),
            "break_even_calls_for_1_percent": int(report.gas_used / (GAS_TARGET * per_call)) + 1,
            "owed_by_a": str(owed_by_a),
            "billed_by_b": str(billed_by_b),
            "ledgers_agree": owed_by_a == billed_by_b > 0,
            "deposits_credited_by_b": len(credited),
            "balances_after_epoch": [
                str(a.ledger.balance(peer_account(b_operator))),
                str(b.ledger.balance(peer_account(a_operator))),
            ],  # fmt: skip
            "reconciled": reconcile(contracts_a)[0] == [] and reconcile(contracts_b)[0] == [],
        }
        a.close()
        b.close()

    result = {
        "machine": machine(),
        "quick": args.quick,
        "latency_target_ratio": LATENCY_TARGET,
        "gas_target_ratio": GAS_TARGET,
        **figures,
        "lm_latency_target_met": figures["lm_latency_ratio"] <= LATENCY_TARGET,
        "gas_target_met": figures["gas_ratio"] <= GAS_TARGET,
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
