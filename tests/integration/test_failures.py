"""Failure handling against the running app: a model replica or the ingress killed mid-query
(`ray.kill` of its actor, as a crash would), with real HTTP clients and the real ledger."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from prsm.db.models import QuerySession
from prsm.services import Services

SESSIONS = QuerySession.__table__

EXPLAIN = {"prompt": "Explain in two sentences why the sky is blue."}


@pytest.fixture(scope="module")
def services(prsm_app):
    with Services(prsm_app.settings) as services:
        yield services


def funded_client(prsm_app, services, account: str) -> httpx.Client:
    token, _ = services.keys.create(account)
    services.ledger.mint(account, 10**18, f"test-faucet-{account}")
    return httpx.Client(base_url=prsm_app.base_url, timeout=300, headers={"authorization": f"Bearer {token}"})


def kill_replicas(deployment: str) -> int:
    """Kill every replica of `deployment` (Serve names them SERVE_REPLICA::prsm#<deployment>#...)."""
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    replicas = [a for a in named if a["name"].startswith(f"SERVE_REPLICA::prsm#{deployment}#")]
    for actor in replicas:
        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=False)
    return len(replicas)


def wait_healthy(prsm_app, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if httpx.get(f"{prsm_app.base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the app never came back"
        time.sleep(1)


def test_killing_the_model_replica_mid_query_loses_no_query(prsm_app, services):
    with funded_client(prsm_app, services, "survivor") as client:
        assert client.post("/v1/query", json=EXPLAIN).status_code == 200  # the model is loaded
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(client.post, "/v1/query", json=EXPLAIN)
            time.sleep(3)  # planned, routed, generating
            assert kill_replicas("LMReplica") >= 1
            response = future.result(timeout=300)
    # It completes on the replica Serve starts in the dead one's place (or fails cleanly).
    assert response.status_code in (200, 502), response.text
    if response.status_code == 200:
        assert response.json()["answer"]
    assert services.ledger.balance("escrow:survivor") == 0  # no hold left open


def test_killing_the_ingress_mid_query_leaves_no_hold_open_past_the_bound(prsm_app, services):
    settings = prsm_app.settings
    with funded_client(prsm_app, services, "orphan") as client, ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.post, "/v1/query", json=EXPLAIN)
        deadline = time.monotonic() + 30
        while services.ledger.balance("escrow:orphan") == 0:  # the query holds its quote
            assert time.monotonic() < deadline, "the query never held its quote"
            time.sleep(0.2)
        held_at = time.monotonic()
        assert kill_replicas("NWTN") >= 1
        with contextlib.suppress(httpx.HTTPError):
            future.result(timeout=120)  # the connection dies with the replica
    wait_healthy(prsm_app)
    # No command is run: the replicas' scheduled sweep releases the hold.
    bound = settings.abandoned_after_s + settings.sweep_every_s + 30
    while services.ledger.balance("escrow:orphan") != 0:
        assert time.monotonic() - held_at < bound, "the hold is still open past the bound"
        time.sleep(2)
    assert services.ledger.balance("orphan") == 10**18
    with services.db.engine.connect() as conn:
        rows = conn.execute(
            select(SESSIONS.c.status, SESSIONS.c.error).where(SESSIONS.c.account == "orphan")
        ).all()
    assert [(r.status, r.error.split(":")[0]) for r in rows] == [("failed", "abandoned")]
