"""Federation, membership (issue 15 §1), end to end: the running app, a real anvil chain, and the
CLI an operator uses. `prsm federation announce` publishes the node's catalogue, proves that the
endpoint answers as this node over HTTP, and announces it in the node registry on chain; an
endpoint that does not answer as this node is refused and nothing reaches the chain; a second
node, with its own data and key, follows the same registry and resumes where it stopped."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from prsm.cli import main
from prsm.federation import catalogue
from prsm.services import Services
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
