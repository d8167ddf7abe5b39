"""Federation, membership (issue 15 §1): the node registry contract, a node's catalogue by CID,
and the check that a node's endpoint answers as that node before it is announced."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prsm.chain.client import Chain
from prsm.chain.contracts import Contracts
from prsm.cli import main
from prsm.errors import ChainError, InvalidInput, NotFound
from prsm.federation import catalogue, node
from prsm.federation import registry as noderegistry
from prsm.quality import Grade, record
from prsm.registry import DEFAULT_MODEL_ID
from prsm.storage.cid import CID, RAW

OPERATOR = "0x" + "ab" * 20
TOKEN, SETTLEMENT = "0x" + "70" * 20, "0x" + "5e" * 20  # how the node is paid


@pytest.fixture
def nodes(services):
    with Chain.in_process() as chain:
        yield noderegistry.NodeRegistry(Contracts(chain, services.ledger), services.db)


def test_a_catalogue_shows_public_cards_and_measured_quality_and_nothing_private(services, registry):
    card = dataclasses.replace(registry.get(DEFAULT_MODEL_ID), id="mine", owner="carol-private",
                               endpoint="https://secret.example/v1", disabled=False)  # fmt: skip
    registry.register(card)
    registry.register(dataclasses.replace(card, id="off"))
    registry.set_disabled("off", True)  # by an operator: not offered
    with services.db.engine.begin() as conn:
        record(
            conn, [Grade("mine", "general", 0.8, "reference:x"), Grade("mine", "general", 0.6, "reference:x")]
        )
    built = catalogue.build(registry, OPERATOR, 31337, TOKEN, SETTLEMENT)
    ids = [m.id for m in built.models]
    assert "mine" in ids and "off" not in ids and ids == sorted(ids)
    mine = next(m for m in built.models if m.id == "mine")
    assert mine.quality["general"].n == 2 and mine.price_per_1k_tokens == str(card.price_per_1k_tokens)
    body = catalogue.encode(built)
    assert b"carol-private" not in body and b"secret.example" not in body and b"weights" not in body
    cid = catalogue.publish(services.store, built)
    assert (
        catalogue.publish(services.store, catalogue.build(registry, OPERATOR, 31337, TOKEN, SETTLEMENT))
        == cid
    )  # canonical
    assert catalogue.fetch(services.store, cid, OPERATOR.upper().replace("0X", "0x")) == built


def test_a_fetched_catalogue_must_parse_and_name_the_operator_that_announced_it(services, registry):
    cid = catalogue.publish(services.store, catalogue.build(registry, OPERATOR, 31337, TOKEN, SETTLEMENT))
    with pytest.raises(InvalidInput, match="names operator"):
        catalogue.fetch(services.store, cid, "0x" + "cd" * 20)
    junk = services.store.put(
        json.dumps(
            {
                "version": 1,
                "operator": OPERATOR,
                "chain_id": 1,
                "token": TOKEN,
                "settlement": SETTLEMENT,
                "models": [{}],
            }
        ).encode()
    )
    with pytest.raises(InvalidInput, match="not a catalogue: models.0.id"):
        catalogue.fetch(services.store, junk, OPERATOR)
    with pytest.raises(NotFound, match="neither"):
        catalogue.fetch(services.store, str(CID.of(RAW, b"never stored")), OPERATOR)
    with pytest.raises(InvalidInput) as info:
        catalogue.fetch(services.store, "not-a-cid", OPERATOR)
    assert info.value.field == "catalogue"
    huge = services.store.put(b" " * (catalogue.MAX_BYTES + 1))
    with pytest.raises(InvalidInput, match="over the limit"):
        catalogue.fetch(services.store, huge, OPERATOR)


def test_nodes_announce_update_and_leave_and_followers_see_the_members(nodes):
    with pytest.raises(ChainError, match="no node registry"):  # reading never deploys one
        nodes.members()
    me = nodes.chain.operator.address
    other = nodes.chain.dev_account(1)
    first = nodes.announce("https://a.example/", "bafy-one")
    assert nodes.node_of(me).endpoint == "https://a.example"  # without its trailing slash
    nodes.chain.send(nodes.contract().functions.announce("https://b.example", "bafy-b"), account=other)
    nodes.announce("https://a2.example", "bafy-two")  # an update, not a second membership
    members = nodes.members()
    assert set(members) == {me, other.address} and members[me].catalogue == "bafy-two"
    assert nodes.contract().functions.members().call() == 2
    assert nodes.members(from_block=first + 1)[me].endpoint == "https://a2.example"
    nodes.leave()
    assert set(nodes.members()) == {other.address} and nodes.node_of(me) is None
    with pytest.raises(InvalidInput):
        nodes.leave()  # not a member any more
    with pytest.raises(ChainError):  # the contract refuses an empty catalogue
        nodes.chain.send(nodes.contract().functions.announce("https://c.example", ""), account=other)


@pytest.mark.parametrize(
    "endpoint",
    ["ftp://a.example", "a.example", "https://a.example/?x=1", "https://u:p@a.example", "https://"],
)
def test_an_endpoint_is_an_http_url_with_a_host_and_nothing_else(endpoint):
    with pytest.raises(InvalidInput) as info:
        noderegistry.check_endpoint_text(endpoint)
    assert info.value.field == "endpoint"


class Answer(BaseHTTPRequestHandler):
    body = b"{}"
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status)
        if self.status == 302:
            self.send_header("location", "http://127.0.0.1:9/")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_an_endpoint_is_announced_only_if_it_answers_with_this_nodes_challenge(server):
    Answer.status, Answer.body = 200, json.dumps({"challenge": "c1"}).encode()
    noderegistry.check_reachable(server, "c1")
    for status, body, why in ((200, b'{"challenge": "c2"}', "not as this node"), (200, b"[]", "not as this node"),
                              (404, b"{}", "answers 404"), (302, b"", "answers 302")):  # fmt: skip
        Answer.status, Answer.body = status, body
        with pytest.raises(InvalidInput, match=why):
            noderegistry.check_reachable(server, "c1")
    Answer.status, Answer.body = 200, b"x" * (noderegistry.MAX_ANSWER_BYTES + 1)
    with pytest.raises(InvalidInput, match="more than"):
        noderegistry.check_reachable(server, "c1")
    with pytest.raises(InvalidInput, match="does not answer"):
        noderegistry.check_reachable("http://127.0.0.1:9", "c1", timeout_s=2)


def test_the_node_record_is_kept_and_forgotten(services):
    assert node.record(services.db) is None
    node.save_record(services.db, {"challenge": "a"})
    node.save_record(services.db, {"challenge": "b"})
    assert node.record(services.db) == {"challenge": "b"}
    node.forget_record(services.db)
    assert node.record(services.db) is None


def test_federation_on_the_in_process_chain_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PRSM_CHAIN_URL", raising=False)
    assert main(["federation", "announce", "--endpoint", "https://a.example"]) == 1
    assert "PRSM_CHAIN_URL" in capsys.readouterr().err


def test_a_follower_keeps_the_peers_resumes_where_it_stopped_and_checks_their_catalogues(
    services, nodes, registry
):
    from prsm.federation import follow

    nodes.address(deploy=True)
    b, c = nodes.chain.dev_account(1), nodes.chain.dev_account(2)
    good = catalogue.publish(
        services.store, catalogue.build(registry, b.address, nodes.chain.chain_id, TOKEN, SETTLEMENT)
    )
    theirs = catalogue.publish(
        services.store, catalogue.build(registry, "0x" + "cd" * 20, 1, TOKEN, SETTLEMENT)
    )  # names another
    absent = str(CID.of(RAW, b"not stored yet"))

    def announce(account, endpoint, cid):
        nodes.chain.send(nodes.contract().functions.announce(endpoint, cid), account=account)

    nodes.announce("https://me.example", good)  # this node: never its own peer
    announce(b, "https://b.example", good)
    announce(c, "https://c.example", theirs)
    first = follow.sync(nodes, services.store)
    assert first["catalogues"] == {b.address: "ok", c.address: "bad_catalogue"}
    by = {p["operator"]: p for p in follow.peers(services.db)}
    assert set(by) == {b.address, c.address} and "smollm2-135m-instruct" in by[b.address]["models"]
    assert "names operator" in by[c.address]["error"]

    assert follow.sync(nodes, services.store)["announced"] == []  # resumes: nothing read twice
    announce(c, "https://c2.example", absent)  # a catalogue not readable yet: tried again later
    again = follow.sync(nodes, services.store)
    assert again["from_block"] == first["to_block"] + 1 and again["catalogues"] == {c.address: "pending"}
    nodes.chain.send(nodes.contract().functions.leave(), account=b)
    last = follow.sync(nodes, services.store)
    assert last["left"] == [b.address] and last["catalogues"] == {c.address: "pending"}
    (only,) = follow.peers(services.db)
    assert only["operator"] == c.address and only["endpoint"] == "https://c2.example" and only["models"] == []
