"""Federation (issue 15), end to end: the running app, a real anvil chain, and the CLI an operator
uses. Membership: `prsm federation announce` publishes the node's catalogue, proves that the
endpoint answers as this node over HTTP, and announces it in the node registry on chain; an
endpoint that does not answer as this node is refused and nothing reaches the chain; a second
node, with its own data and key, follows the same registry and resumes where it stopped."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select
from web3 import HTTPProvider, Web3

from prsm.chain import signing
from prsm.chain.client import Chain
from prsm.cli import main
from prsm.db.models import ChainState
from prsm.federation import catalogue, market, node, serve
from prsm.services import Services
from prsm.settings import Settings
from tests.conftest import MODEL_DIR
from tests.services import anvil_node, free_port


@pytest.fixture(scope="module")
def anvil():
    with anvil_node() as (url, keys):
        yield url, keys


def test_a_node_announces_itself_only_through_an_endpoint_that_answers_as_it(
    prsm_app, anvil, monkeypatch, capsys, tmp_path
):
    url, keys = anvil
    s = prsm_app.settings
    for name, value in (("PRSM_DATA_DIR", s.data_dir), ("PRSM_MODEL_DIR", s.model_dir), ("PRSM_CHAIN_URL", url),
                        ("PRSM_CHAIN_KEY", keys[0])):  # fmt: skip
        monkeypatch.setenv(name, str(value))
    # public, like /healthz (no key), and nothing to show before an announcement
    answer = httpx.get(f"{prsm_app.base_url}/v1/federation/node")
    assert answer.status_code == 404 and answer.json()["error"]["param"] == "node"

    assert main(["federation", "announce", "--endpoint", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "does not answer" in capsys.readouterr().err
    assert httpx.get(f"{prsm_app.base_url}/v1/federation/node").status_code == 404  # nothing left behind

    assert main(["federation", "announce", "--endpoint", prsm_app.base_url]) == 0
    capsys.readouterr()
    mine = httpx.get(f"{prsm_app.base_url}/v1/federation/node").json()
    assert mine["announced"] is True and mine["endpoint"] == prsm_app.base_url
    assert main(["federation", "nodes", "--json"]) == 0
    (member,) = json.loads(capsys.readouterr().out)["nodes"]
    assert member["operator"] == mine["operator"] and member["catalogue"] == mine["catalogue"]
    with Services() as services:  # a peer reads the catalogue by its CID and checks it
        offered = catalogue.fetch(services.store, member["catalogue"], member["operator"])
    assert {"smollm2-135m-instruct", "pint-units"} <= {m.id for m in offered.models}

    assert main(["federation", "status", "--json"]) == 0
    registry_address = json.loads(capsys.readouterr().out)["registry"]

    # a second node (its own data and key) follows the same registry and sees this one
    a_env = {n: os.environ[n] for n in ("PRSM_DATA_DIR", "PRSM_CHAIN_KEY")}
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path / "peer"))
    monkeypatch.setenv("PRSM_CHAIN_KEY", keys[1])
    monkeypatch.setenv("PRSM_FEDERATION_REGISTRY", registry_address)
    assert main(["federation", "sync", "--json"]) == 0
    seen = json.loads(capsys.readouterr().out.splitlines()[-1])
    # its own store lacks the first node's catalogue (no shared IPFS node here): tried again later
    assert seen["announced"] == [mine["operator"]] and seen["catalogues"] == {mine["operator"]: "pending"}
    assert main(["ops", "run", "federation"]) == 0  # the scheduled job: resumes after the last sync
    ran = capsys.readouterr().out
    assert "federation: ok in" in ran and f"blocks {seen['to_block'] + 1}.." in ran
    for name, value in a_env.items():
        monkeypatch.setenv(name, value)

    assert main(["federation", "leave"]) == 0
    assert main(["federation", "nodes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["nodes"] == []
    assert httpx.get(f"{prsm_app.base_url}/v1/federation/node").status_code == 404


# --- two nodes: routing, signed calls, paying each other (issue 15 §2–4) ---------------------------

REPO = Path(__file__).resolve().parents[2]
NODE_VARS = ("PRSM_DATA_DIR", "PRSM_MODEL_DIR", "PRSM_PORT", "PRSM_CHAIN_URL", "PRSM_CHAIN_KEY", "PRSM_FTNS_TOKEN",
             "PRSM_FEDERATION_REGISTRY", "PRSM_EGRESS_ALLOW", "PRSM_FEDERATION_SYNC_EVERY_S", "PRSM_SETTLE_EVERY_S",
             "PRSM_CANARY_EVERY_S")  # fmt: skip
UNITS = "Convert 3 km to miles."
STATE = ChainState.__table__


class NodeProcess:
    """tests/federation_node.py: a PRSM node with its own Ray, database and store."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{env['PRSM_PORT']}"
        self.process = None
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self, wait: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRSM_")} | self.env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.federation_node"], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("a"),
        )  # fmt: skip
        threading.Thread(target=lambda: [self._lines.put(line.strip()) for line in self.process.stdout],
                         daemon=True).start()  # fmt: skip
        if wait:
            self.wait()

    def command(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        self.wait()

    def wait(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._lines.get(timeout=max(deadline - time.monotonic(), 0.1)) == "ok":
                    return
            except queue.Empty:
                raise AssertionError(
                    f"node {self.url} did not answer: {self.log.read_text()[-3000:]}"
                ) from None

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def as_node(monkeypatch, env: dict[str, str]) -> None:
    """This process acts as the node's operator (its CLI), like `export PRSM_...` in its shell."""
    for name in NODE_VARS:
        if name in env:
            monkeypatch.setenv(name, env[name])
        else:
            monkeypatch.delenv(name, raising=False)


def cli(monkeypatch, capsys, env: dict[str, str], *args: str) -> str:
    as_node(monkeypatch, env)
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, f"prsm {' '.join(args)}: {out.err[-2000:]}"
    return out.out


def contracts_of(env: dict) -> dict:
    """The node's FTNS token and settlement contract, as its database knows them."""
    with (
        Services(Settings(data_dir=env["PRSM_DATA_DIR"], _env_file=None)) as services,
        services.db.engine.connect() as conn,
    ):
        return conn.execute(select(STATE.c.value).where(STATE.c.key == "contracts:31337")).scalar()


def carry_catalogue(env_from: dict, env_to: dict) -> None:
    """The announced catalogue reaches the other node's store by its CID (each node here has a
    local store; tests/integration/test_ipfs.py shows the same bytes through a real IPFS node)."""
    with Services(Settings(data_dir=env_from["PRSM_DATA_DIR"], _env_file=None)) as a:
        cid = node.record(a.db)["catalogue"]
        body = b"".join(a.store.get(cid))
    with Services(Settings(data_dir=env_to["PRSM_DATA_DIR"], _env_file=None)) as b:
        assert b.store.put(body) == cid


def test_two_nodes_route_a_sub_task_sign_their_calls_pay_each_other_and_survive_one_going_down(
    anvil, monkeypatch, capsys, tmp_path
):
    """Node B offers a units tool; node A has switched its own off. A's user asks A; the sub-task
    goes to B with a signed call; A's user pays A, A owes B what B charged, and one settlement
    epoch pays it on chain; both reconcile. Forged and strangers' calls are refused by B. B goes
    down: A's queries fail cleanly and A stops trying B; B comes back: A uses it again."""
    url, keys = anvil
    common = {"PRSM_MODEL_DIR": str(MODEL_DIR), "PRSM_CHAIN_URL": url, "PRSM_EGRESS_ALLOW": '["127.0.0.1"]',
              "PRSM_FEDERATION_SYNC_EVERY_S": "0", "PRSM_SETTLE_EVERY_S": "0", "PRSM_CANARY_EVERY_S": "0"}  # fmt: skip
    env_b = common | {
        "PRSM_DATA_DIR": str(tmp_path / "b"),
        "PRSM_PORT": str(free_port()),
        "PRSM_CHAIN_KEY": keys[2],
    }
    env_a = common | {
        "PRSM_DATA_DIR": str(tmp_path / "a"),
        "PRSM_PORT": str(free_port()),
        "PRSM_CHAIN_KEY": keys[3],
    }
    with Services.from_settings(Settings(data_dir=env_a["PRSM_DATA_DIR"], _env_file=None), upgrade=True) as a:
        carol = a.keys.create("carol", "user")[0]
        a.ledger.mint("carol", 10**18, "test-faucet-carol")
        a.registry.ensure_defaults()
        a.registry.set_disabled("pint-units", True)  # A's operator: no units tool here
    node_b = NodeProcess(env_b, tmp_path / "b.log")
    node_a = NodeProcess(env_a, tmp_path / "a.log")
    try:
        node_b.start(wait=False)  # both start at once: A's app needs nothing of B's to run
        node_a.start(wait=False)
        node_b.wait()
        node_a.wait()
        cli(monkeypatch, capsys, env_b, "federation", "announce", "--endpoint", node_b.url)
        status = json.loads(cli(monkeypatch, capsys, env_b, "federation", "status", "--json"))
        # A's operator joins B's network: its CLI (announce, sync, settle) uses B's token and registry
        env_a |= {
            "PRSM_FTNS_TOKEN": contracts_of(env_b)["token"],
            "PRSM_FEDERATION_REGISTRY": status["registry"],
        }
        cli(monkeypatch, capsys, env_a, "federation", "announce", "--endpoint", node_a.url)
        carry_catalogue(env_b, env_a)
        carry_catalogue(env_a, env_b)
        b_operator = Account.from_key(keys[2]).address
        a_operator = Account.from_key(keys[3]).address
        followed = json.loads(cli(monkeypatch, capsys, env_b, "federation", "sync", "--json"))
        assert followed["catalogues"] == {a_operator: "ok"}
        followed = json.loads(cli(monkeypatch, capsys, env_a, "federation", "sync", "--json"))
        assert followed["catalogues"] == {b_operator: "ok"} and followed["offered"]["left_out"] == {}
        assert market.card_id(b_operator, "pint-units") in followed["offered"]["added"]

        user = httpx.Client(base_url=node_a.url, timeout=120, headers={"authorization": f"Bearer {carol}"})
        answer = user.post("/v1/query", json={"prompt": UNITS})
        assert answer.status_code == 200, answer.text
        trace = answer.json()
        (task,) = trace["tasks"]
        assert task["node"] == b_operator and task["model"] == market.card_id(b_operator, "pint-units")
        assert "mile" in task["result"] and trace["sources"][0]["node"] == b_operator

        def peers(env) -> dict:
            out = cli(monkeypatch, capsys, env, "federation", "peers", "--json")
            return {p["operator"]: int(p["balance"]) for p in json.loads(out)["peers"]}

        owed = peers(env_a)[b_operator]
        assert owed > 0 and peers(env_b)[a_operator] == -owed  # the two ledgers agree to the unit
        assert int(trace["cost"]["charged"]) > owed  # A's user paid B's price, A's fee and the query fee

        # B refuses calls that are not signed by a member for it
        body = json.dumps({"model": "pint-units", "messages": [{"role": "user", "content": UNITS}],
                           "max_tokens": 8, "price_per_call": str(10**18), "price_per_1k_tokens": "0"}).encode()  # fmt: skip
        stranger = Account.from_key(keys[4])
        for headers in (
            {},
            signing.sign(stranger, "POST", serve.PATH, b_operator, 31337, body),
            signing.sign(stranger, "POST", serve.PATH, b_operator, 31337, body) | {signing.NODE: a_operator},
        ):
            refused = httpx.post(node_b.url + serve.PATH, content=body, headers=headers, timeout=30)
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "BadSignature"

        # A's epoch pays what it owes B into B's settlement contract, from A's reserve (funded by
        # the network's token owner here; a real node buys FTNS and sends it to its contract)
        a_settlement = contracts_of(env_a)["settlement"]
        with Chain(Web3(HTTPProvider(url)), Account.from_key(keys[2])) as chain:
            chain.send(
                chain.contract("FTNSToken", env_a["PRSM_FTNS_TOKEN"]).functions.mint(a_settlement, 10**18)
            )
        assert "confirmed" in cli(monkeypatch, capsys, env_a, "ftns", "settle")
        cli(monkeypatch, capsys, env_b, "ftns", "deposits")
        assert peers(env_a)[b_operator] == 0 == peers(env_b)[a_operator]
        cli(monkeypatch, capsys, env_a, "ftns", "reconcile")  # exit 0: no difference
        cli(monkeypatch, capsys, env_b, "ftns", "reconcile")

        # B goes down: A's queries fail cleanly (nothing charged), then A stops trying B
        node_b.command("stop")
        before = user.get("/v1/accounts/carol").json()["balance"]
        for _ in range(3):  # the breaker's threshold
            failed = user.post("/v1/query", json={"prompt": UNITS})
            assert failed.status_code == 502 and "peer" in failed.json()["error"]["message"]
        down = user.post("/v1/query", json={"prompt": UNITS})
        assert down.status_code == 502 and "no registered model offers" in down.json()["error"]["message"]
        assert user.get("/v1/accounts/carol").json()["balance"] == before
        # B comes back: after the breaker's cooldown A tries it once, and uses it again
        node_b.command("start")
        deadline = time.monotonic() + 90
        while (again := user.post("/v1/query", json={"prompt": UNITS})).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(3)
        assert again.json()["tasks"][0]["node"] == b_operator
    finally:
        node_a.close()
        node_b.close()
