"""Federation, routing and paying (issue 15 §2–3), with two real PRSM nodes in one process: each
its own database, store, ledger, orchestrator and HTTP server; one in-process chain with one FTNS
token, a settlement contract per node and the node registry. Node B offers a units tool that node
A has switched off; A's query goes to B with a signed call, A's user pays A, A owes B exactly what
B charged, and one settlement epoch nets it on chain. Signatures that are missing, forged, stale,
by a stranger or replayed are refused; a peer that stops answering drops out and comes back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time

import httpx
import pytest

from prsm.chain import signing
from prsm.chain.client import Chain
from prsm.chain.contracts import Contracts
from prsm.chain.deposits import scan_deposits
from prsm.chain.epochs import Settler
from prsm.chain.reconcile import reconcile
from prsm.errors import AllCandidatesFailed, BadSignature, InsufficientFunds
from prsm.federation import catalogue, follow, market, node
from prsm.federation import serve as federation
from prsm.federation.registry import NodeRegistry
from prsm.ftns.ledger import AccountKind, peer_account
from prsm.ftns.pricing import Shares, split
from prsm.nwtn.compile import FROM_PEER
from prsm.nwtn.execute import CircuitBreaker, blocked, circuit
from prsm.nwtn.route import MarketPolicy, Router, score_candidates
from prsm.services import Services
from prsm.settings import Settings
from prsm.types import Capability, ModelCard, ModelKind, SubTask
from tests.conftest import MODEL_DIR, orchestrator
from tests.fakes import EchoLM
from tests.services import FederationServer, free_port

UNITS = "Convert 3 km to miles."


def make_node(tmp_path, migrated_sqlite, name: str, key, **overrides) -> Services:
    settings = Settings(data_dir=tmp_path / name, model_dir=MODEL_DIR, _env_file=None, chain_key=key.key.hex(),
                        egress_allow=["127.0.0.1"], **overrides)  # fmt: skip
    settings.data_dir.mkdir(parents=True)
    with sqlite3.connect(migrated_sqlite) as source, sqlite3.connect(settings.data_dir / "prsm.db") as copy:
        source.backup(copy)
    services = Services(settings)
    services.registry.ensure_defaults()
    return services


@dataclasses.dataclass
class Node:
    services: Services
    chain: Chain
    contracts: Contracts
    nodes: NodeRegistry
    nwtn: object
    server: FederationServer

    @property
    def operator(self) -> str:
        return self.chain.operator.address

    def announce(self, stores) -> None:
        paid = self.contracts.addresses()
        doc = catalogue.build(self.services.registry, self.operator, self.chain.chain_id, paid["token"],
                              paid["settlement"])  # fmt: skip
        cid = next(catalogue.publish(store, doc) for store in stores)  # as if through one IPFS network
        for store in stores[1:]:
            catalogue.publish(store, doc)
        self.nodes.announce(self.server.url, cid)
        node.save_record(self.services.db, {"operator": self.operator, "endpoint": self.server.url, "catalogue": cid,
                                            "chain_id": self.chain.chain_id, "announced": True})  # fmt: skip

    def follow(self) -> dict:
        return follow.follow(self.nodes, self.services.store, self.services.registry, self.services.settings)


@pytest.fixture
def network(tmp_path, migrated_sqlite, embedder):
    with Chain.in_process() as chain_a:
        a_key, b_key = chain_a.operator, chain_a.dev_account(1)
        a = make_node(tmp_path, migrated_sqlite, "a", a_key)
        b = make_node(tmp_path, migrated_sqlite, "b", b_key, federation_credit=3 * 10**14)
        contracts_a = Contracts(chain_a, a.ledger)
        token = contracts_a.addresses()["token"]  # A's token is the network's
        chain_b = Chain(chain_a.w3, b_key, token=token)
        contracts_b = Contracts(chain_b, b.ledger)
        nodes_a = NodeRegistry(contracts_a, a.db)
        registry_address = nodes_a.address(deploy=True)["registry"]
        nodes_b = NodeRegistry(contracts_b, b.db, registry_address)
        built = []
        for services, chain, contracts, nodes in (
            (a, chain_a, contracts_a, nodes_a),
            (b, chain_b, contracts_b, nodes_b),
        ):
            services.models.host("smollm2-135m-instruct", EchoLM())
            nwtn = orchestrator(
                services, Router(services.registry, embedder, policy=services.market), services.models
            )
            built.append(Node(services, chain, contracts, nodes, nwtn, FederationServer(services, nwtn, free_port())))  # fmt: skip
        node_a, node_b = built
        for n in built:
            n.server.start()
        # A switches its own units tool off: B's is the only one it can use.
        a.registry.set_disabled("pint-units", True)
        node_b.announce([b.store, a.store])
        node_a.announce([a.store, b.store])
        yield node_a, node_b
        for n in built:
            n.server.stop()
            n.services.close()


def ask(n: Node, prompt: str = UNITS) -> dict:
    return asyncio.run(n.nwtn.query(prompt, "alice"))


def test_a_sub_task_goes_to_the_peer_that_has_the_model_and_both_ledgers_agree_to_the_unit(network):
    a, b = network
    offered = a.follow()["offered"]
    (peer_units,) = [m for m in offered["added"] if m.endswith("-pint-units")]
    assert peer_units == market.card_id(b.operator, "pint-units") and offered["left_out"] == {}
    card = a.services.registry.get(peer_units)
    b_price = b.services.registry.get("pint-units").price_per_call
    assert card.kind == ModelKind.PEER and card.owner == peer_account(b.operator)
    assert card.price_per_call == b_price + b_price // 10  # B's price plus A's 10 % fee
    assert b.follow()["catalogues"] == {a.operator: "ok"}  # B knows A: it will answer it

    trace = ask(a)
    (task,) = trace["tasks"]
    assert task["model"] == peer_units and task["node"] == b.operator and task["status"] == "done"
    assert "mile" in task["result"]
    assert FROM_PEER in trace["answer"]  # A did not compute these numbers itself
    (source,) = trace["sources"]
    assert source["node"] == b.operator
    measured = a.services.registry.get(peer_units)  # A's own measurements of B's model
    assert measured.calls == 1 and measured.failures == 0 and measured.latency_ms > 0
    # B billed A (not A's user) exactly its price; A's user paid B's price, the fee and the query fee.
    owed = a.services.ledger.balance(peer_account(b.operator))
    assert owed == b_price == -b.services.ledger.balance(peer_account(a.operator))
    assert int(trace["cost"]["charged"]) == card.price_per_call + a.services.settings.query_fee
    assert (
        b.services.ledger.balance("prsm-foundation") == b_price * 8 // 10
    )  # B's owner is paid as for any use

    # One settlement epoch of A pays what it owes to B's settlement contract; B credits it to A's
    # account there: both sides back to zero, and both reconcile with the chain.
    report = Settler(a.services.settings, a.contracts).settle()
    assert [(line[0], line[2]) for line in report.lines] == [(peer_account(b.operator), b_price)]
    assert [d["account"] for d in scan_deposits(b.contracts, 1)] == [peer_account(a.operator)]
    assert (
        a.services.ledger.balance(peer_account(b.operator))
        == 0
        == b.services.ledger.balance(peer_account(a.operator))
    )
    assert reconcile(a.contracts)[0] == [] and reconcile(b.contracts)[0] == []  # fmt: skip


def test_calls_to_a_node_are_refused_unless_signed_fresh_once_by_a_member(network):
    a, b = network
    a.follow()
    b.follow()
    stranger = a.chain.dev_account(2)
    audience, chain_id = b.operator, b.chain.chain_id
    body = json.dumps({"model": "pint-units", "messages": [{"role": "user", "content": UNITS}], "max_tokens": 8,
                       "price_per_call": str(10**14), "price_per_1k_tokens": "0"}).encode()  # fmt: skip
    url = b.server.url + federation.PATH

    def post(headers, content=body):
        return httpx.post(url, content=content, headers=headers | {"content-type": "application/json"})

    def refused(answer, why):
        assert answer.status_code == 401 and answer.json()["error"]["type"] == "BadSignature", answer.text
        assert why in answer.json()["error"]["message"]

    refused(post({}), "signed by its chain key")
    refused(post(signing.sign(stranger, "POST", federation.PATH, audience, chain_id, body)), "not a member")
    forged = signing.sign(stranger, "POST", federation.PATH, audience, chain_id, body) | {
        signing.NODE: a.operator
    }
    refused(post(forged), "not by")
    for_another = signing.sign(a.chain.operator, "POST", federation.PATH, stranger.address, chain_id, body)
    refused(post(for_another), "not by")
    stale = signing.sign(
        a.chain.operator, "POST", federation.PATH, audience, chain_id, body, now=time.time() - 3600
    )
    refused(post(stale), "signed")
    good = signing.sign(a.chain.operator, "POST", federation.PATH, audience, chain_id, body)
    refused(post(good, body.replace(b"3 km", b"9 km")), "not by")  # the body is signed too
    first = post(good)
    assert first.status_code == 200 and int(first.json()["prsm_charge"]["charged"]) == 10**14
    again = post(good)  # a captured request sent again: answered once, billed once
    assert again.status_code == 409 and b.services.ledger.balance(peer_account(a.operator)) == -(10**14)

    cheap = body.replace(str(10**14).encode(), b"1")
    answer = post(signing.sign(a.chain.operator, "POST", federation.PATH, audience, chain_id, cheap), cheap)
    assert answer.status_code == 409 and answer.json()["error"]["param"] == "price_per_call"  # prices changed
    answer = post(signing.sign(a.chain.operator, "POST", federation.PATH, audience, chain_id, b"{}"), b"{}")
    assert answer.status_code == 422 and answer.json()["error"]["param"] == "model"
    for _ in range(2):  # B lets A owe it 3e14 (PRSM_FEDERATION_CREDIT), not more: a third call is 402
        assert (
            post(
                signing.sign(a.chain.operator, "POST", federation.PATH, audience, chain_id, body)
            ).status_code
            == 200
        )
    over = post(signing.sign(a.chain.operator, "POST", federation.PATH, audience, chain_id, body))
    assert over.status_code == 402 and b.services.ledger.balance(peer_account(a.operator)) == -3 * 10**14


def test_a_peer_that_stops_answering_drops_out_and_comes_back(network):
    a, b = network
    a.follow()
    b.follow()
    a.nwtn.breaker = CircuitBreaker(threshold=2, cooldown_s=1.0)
    assert ask(a)["status"] == "completed"
    b.server.stop()
    alice = a.services.ledger.balance("alice")
    for _ in range(2):
        with pytest.raises(AllCandidatesFailed, match="peer"):
            ask(a)
    assert a.services.ledger.balance("alice") == alice  # failed cleanly: nothing charged
    assert circuit(market.card_id(b.operator, "pint-units")) in a.nwtn.breaker.open_ids()  # B is down for A
    with pytest.raises(AllCandidatesFailed, match="no registered model offers"):
        ask(a)  # not even tried while its breaker is open
    b.server.start()  # back on the same address
    time.sleep(1.1)  # the cooldown: one trial call decides
    assert ask(a)["status"] == "completed" and not a.nwtn.breaker.open_ids()


def test_a_peer_in_another_token_or_leaving_the_network_is_not_offered(network, tmp_path, migrated_sqlite):
    a, b = network
    assert a.follow()["offered"]["added"]
    b.nodes.leave()
    done = a.follow()
    assert done["left"] == [b.operator] and all(m.startswith("peer-") for m in done["offered"]["removed"])
    assert not [c for c in a.services.registry.list() if c.kind == ModelKind.PEER]

    # C pays in a token of its own: its models are not offered, and the reason is given.
    c_key = a.chain.dev_account(3)
    with make_node(tmp_path, migrated_sqlite, "c", c_key) as c:
        contracts_c = Contracts(Chain(a.chain.w3, c_key), c.ledger)
        paid = contracts_c.addresses()
        doc = catalogue.build(c.registry, c_key.address, a.chain.chain_id, paid["token"], paid["settlement"])
        cid = catalogue.publish(a.services.store, doc)
        NodeRegistry(contracts_c, c.db, a.nodes.address()["registry"]).announce("http://127.0.0.1:9", cid)
        done = a.follow()
    assert "paid in token" in done["offered"]["left_out"][c_key.address] and not done["offered"]["added"]


# --- the parts, without a network ---------------------------------------------------------------


def test_a_peer_account_may_owe_up_to_the_credit_and_no_other_account_below_zero(services):
    ledger = services.ledger
    ledger.peer_credit = 5
    peer = peer_account("0x" + "ab" * 20)
    ledger.open_account(peer, AccountKind.PEER)
    ledger.open_account("bob")
    ledger.hold(peer, 5, "h1")  # down to -5: its credit
    with pytest.raises(InsufficientFunds):
        ledger.hold(peer, 1, "h2")
    with pytest.raises(InsufficientFunds):
        ledger.hold("bob", 1, "h3")  # a user's account never goes below zero
    ledger.mint(peer, 2, "deposit")  # what the peer pays arrives while it is below zero
    assert ledger.balance(peer) == -3
    with pytest.raises(Exception, match="invalid account id"):
        ledger.open_account("peer:bob", AccountKind.PEER)
    with pytest.raises(Exception, match="invalid account id"):
        ledger.open_account(peer)  # a user cannot take a peer's name


def test_the_peer_is_owed_exactly_what_it_charged_and_the_fee_is_this_nodes():
    shares = Shares(8000, 1500, 500, 1000, "op")
    card = ModelCard(id="peer-x-m", kind=ModelKind.PEER, description="", owner="peer:b", licence="",
                     price_per_call=110)  # fmt: skip
    parts = split([(card, 110, 100)], 0, 10**6, shares, {})
    assert parts == {"peer:b": 100, "op": 9, "ftns:treasury": 1}
    # a charge past the quote is scaled down, but what the peer charged is paid whole
    parts = split([(card, 110, 100)], 20, 115, shares, {})
    assert parts["peer:b"] == 100 and sum(parts.values()) == 115


def test_peer_cards_are_routed_only_for_federated_capabilities_and_peer_tools_only_by_tag(embedder):
    tool = ModelCard(id="peer-ab-t", kind=ModelKind.PEER, description="general knowledge answers", owner="peer:x",
                     licence="", tags=("units",), peer={"kind": "tool"})  # fmt: skip
    lm = dataclasses.replace(tool, id="peer-ab-lm", tags=("general",), peer={"kind": "transformers"})
    task = SubTask("t1", "Explain entropy.", Capability.GENERAL)
    vectors = dict(
        zip(["peer-ab-t", "peer-ab-lm"], embedder.embed_many(["general knowledge answers"] * 2), strict=True)
    )
    task_vector = embedder.embed_many([task.text])[0]
    ids = [c.model_id for c in score_candidates(task, [tool, lm], task_vector, vectors)]
    assert ids == ["peer-ab-lm"]  # a peer's tool, like a local one, only where it is tagged
    off = MarketPolicy(federated=frozenset({Capability.UNITS}))
    assert score_candidates(task, [tool, lm], task_vector, vectors, policy=off) == []
    assert blocked("peer-ab-other", frozenset({circuit("peer-ab-lm")}))  # one breaker per peer node
    assert not blocked("sympy-cas", frozenset({circuit("peer-ab-lm")}))


def test_a_signature_binds_node_audience_chain_time_and_body():
    from eth_account import Account

    me, other = Account.create(), Account.create()
    body = b'{"x": 1}'
    headers = signing.sign(me, "POST", "/p", other.address, 7, body, now=1000)
    assert signing.signer(headers, "POST", "/p", other.address, 7, body, 60, now=1030)[0] == me.address
    for changed in ({"audience": me.address}, {"chain_id": 8}, {"body": b"{}"}, {"path": "/q"}):
        args = {"audience": other.address, "chain_id": 7, "body": body, "path": "/p"} | changed
        with pytest.raises(BadSignature):
            signing.signer(
                headers, "POST", args["path"], args["audience"], args["chain_id"], args["body"], 60, now=1000
            )
    with pytest.raises(BadSignature, match="signed"):
        signing.signer(headers, "POST", "/p", other.address, 7, body, 60, now=1061)
    for bad in (
        {signing.SIGNATURE: "0x12"},
        {signing.NONCE: "x"},
        {signing.TIMESTAMP: "-1"},
        {signing.NODE: "me"},
    ):
        with pytest.raises(BadSignature) as info:
            signing.signer(headers | bad, "POST", "/p", other.address, 7, body, 60, now=1000)
        assert info.value.field == next(iter(bad))


def test_nobody_registers_a_peer_model_by_hand():
    from pydantic import ValidationError

    from prsm.api.schemas import ModelCardIn

    card = {"description": "a units tool of my own", "licence": "MIT", "endpoint": "tool:units"}
    with pytest.raises(ValidationError, match="peer nodes' models"):
        ModelCardIn(id=market.card_id("0x" + "ab" * 20, "pint-units"), kind="tool", **card)
    with pytest.raises(ValidationError, match="'transformers', 'tool' or 'openai'"):
        ModelCardIn(id="my-units", kind="peer", **card)


def test_a_catalogue_kept_by_an_older_node_is_left_out_with_the_reason(network):
    from sqlalchemy import update

    from prsm.db.models import FederationPeer

    a, b = network
    assert a.follow()["offered"]["added"]
    peers = FederationPeer.__table__
    with a.services.db.writer.begin() as conn:  # as an older PRSM stored it: no token, no settlement
        doc = conn.execute(peers.select()).first().document
        old = {k: v for k, v in doc.items() if k not in ("token", "settlement")}
        conn.execute(update(peers).values(document=old))
    done = a.follow()["offered"]
    assert "announce again" in done["left_out"][b.operator] and done["removed"]
