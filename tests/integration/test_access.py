"""Who is asking, over HTTP against the running app: the attacks of issue 11's first part, each
as the behaviour that closes it."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import httpx
import pytest

from prsm.api.auth import PUBLIC
from prsm.db.models import utcnow
from prsm.services import Services
from prsm.types import KeyLimits

EXPAND = {"model": "sympy-cas", "messages": [{"role": "user", "content": "expand (x+1)^2"}]}


@pytest.fixture(scope="module")
def services(prsm_app):
    with Services(prsm_app.settings) as services:
        yield services


def client(prsm_app, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=prsm_app.base_url, timeout=300, headers=headers)


def balance(services, account: str) -> int:
    return services.ledger.balance(account)


def test_every_route_but_health_docs_and_the_federation_record_needs_a_valid_key(prsm_app, services):
    revoked, record = services.keys.create("erin")
    services.keys.revoke(record.id)
    expired, _ = services.keys.create("erin", expires_at=utcnow() + timedelta(seconds=0.01))
    document = httpx.get(f"{prsm_app.base_url}/openapi.json").json()
    assert httpx.get(f"{prsm_app.base_url}/healthz").status_code == 200
    assert httpx.get(f"{prsm_app.base_url}/docs").status_code == 200
    assert httpx.get(f"{prsm_app.base_url}/v1/federation/node").status_code == 404  # public: no 401
    routes = [(m, p) for p, ops in document["paths"].items() for m in ops if p not in PUBLIC]
    assert len(routes) >= 15
    for token in (None, "not-a-key", "prsm_000000000000_" + "A" * 43, revoked, expired):
        with client(prsm_app, token) as c:
            for method, path in routes:
                url = path.replace("{session_id}", "x").replace("{account_id}", "erin").replace(
                    "{cid}", "bafkqaaa").replace("{model_id}", "sympy-cas").replace("{key_id}", record.id)  # fmt: skip
                response = c.request(method.upper(), url, json={} if method in ("post", "patch") else None)
                assert response.status_code == 401, (method, path, token, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_api_key" and error["message"] and "param" in error
                assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_cannot_spend_another_account(prsm_app, services):
    # The drain of the issue: mallory registers a dear tool and calls it "as" alice.
    mallory_key, _ = services.keys.create("mallory", "owner")
    alice_before, mallory_before = balance(services, "alice"), balance(services, "mallory")
    card = {"id": "mallory-tool", "kind": "tool", "description": "Symbolic algebra, premium service",
            "licence": "MIT", "endpoint": "tool:math", "tags": ["math"], "price_per_call": str(10**17)}  # fmt: skip
    with client(prsm_app, mallory_key) as mallory:
        assert mallory.post("/v1/models", json=card).status_code == 201
        drained = mallory.post(
            "/v1/chat/completions", json={**EXPAND, "model": "mallory-tool", "user": "alice"}
        )
        assert drained.status_code == 402 and drained.json()["error"]["field"] == "account"  # mallory pays
        query = mallory.post("/v1/query", json={"prompt": "Integrate x^2", "user": "alice"})
        assert query.status_code == 402
        assert mallory.delete("/v1/models/mallory-tool").status_code == 200
    assert balance(services, "alice") == alice_before and balance(services, "mallory") == mallory_before


def test_the_body_user_is_a_recorded_tag_and_the_keys_account_pays(prsm_app, services):
    erin_before, alice_before = balance(services, "erin"), balance(services, "alice")
    with prsm_app.client("erin") as erin:
        trace = erin.post("/v1/query", json={"prompt": "Convert 2 km to m", "user": "alice"}).json()
    assert (trace["account"], trace["user"]) == ("erin", "alice")
    assert balance(services, "erin") == erin_before - int(trace["cost"]["charged"])
    assert balance(services, "alice") == alice_before


def test_another_accounts_objects_answer_404_and_an_operator_sees_them(prsm_app):
    with prsm_app.client("alice") as alice, prsm_app.client("bob") as bob, prsm_app.client("operator") as op:
        session = alice.post("/v1/query", json={"prompt": "Convert 3 km to m"}).json()["session_id"]
        assert alice.get(f"/v1/sessions/{session}").status_code == 200
        for path in (f"/v1/sessions/{session}", "/v1/accounts/alice", "/v1/accounts/alice/entries"):
            assert bob.get(path).status_code == 404, path
            assert op.get(path).status_code == 200, path
        # Another account's session answers exactly as one that does not exist.
        theirs = bob.get(f"/v1/sessions/{session}").json()["error"]
        none = bob.get("/v1/sessions/no-such-session").json()["error"]
        assert (theirs["type"], theirs["field"]) == (none["type"], none["field"])


def test_only_a_sessions_own_account_rates_it(prsm_app):
    with prsm_app.client("alice") as alice, prsm_app.client("bob") as bob:
        trace = alice.post("/v1/query", json={"prompt": "Convert 4 km to m"}).json()
        path = f"/v1/sessions/{trace['session_id']}/feedback"
        assert bob.post(path, json={"score": 0}).status_code == 404  # as if it did not exist
        rated = alice.post(path, json={"score": 0.75, "comment": "right", "task": trace["tasks"][0]["key"]})
        assert rated.status_code == 201, rated.text
        again = alice.post(path, json={"score": 0.75, "comment": "right", "task": trace["tasks"][0]["key"]})
        assert again.status_code == 200 and again.json() == rated.json()
        bad = alice.post(path, json={"score": 2})
        assert bad.status_code == 422 and "score" in bad.text
        shown = alice.get(f"/v1/sessions/{trace['session_id']}").json()["feedback"]
        assert [(f["task"], f["score"]) for f in shown] == [(trace["tasks"][0]["key"], 0.75)]


def test_an_account_chooses_whether_its_sessions_feed_the_learning_loop(prsm_app):
    with prsm_app.client("erin") as erin, prsm_app.client("bob") as bob, prsm_app.client("operator") as op:
        path = "/v1/accounts/erin/data-sharing"
        assert erin.get(path).json()["allowed"] is True  # the default of the embedded stack
        assert bob.put(path, json={"allowed": False}).status_code == 404  # not bob's to choose
        assert erin.put(path, json={"allowed": False}).json()["allowed"] is False
        assert erin.get(path).json()["allowed"] is False and op.get(path).json()["allowed"] is False
        bad = erin.put(path, json={"allowed": "no"})
        assert bad.status_code == 422 and "allowed" in bad.text
        assert op.get("/v1/accounts/no-such-account/data-sharing").status_code == 404


def test_cards_belong_to_the_registering_key_and_only_their_owner_changes_them(prsm_app, services):
    card = {"id": "bob-units", "kind": "tool", "description": "Unit conversion, bob's edition",
            "licence": "MIT", "endpoint": "tool:units", "tags": ["units"], "price_per_call": "5"}  # fmt: skip
    with (
        prsm_app.client("bob") as bob,
        prsm_app.client("alice") as alice,
        prsm_app.client("erin") as erin,
        prsm_app.client("operator") as op,
    ):
        assert erin.post("/v1/models", json={**card, "id": "erin-units"}).status_code == 403  # a user key
        impostor = bob.post("/v1/models", json={**card, "owner": "alice"})
        assert impostor.status_code == 403 and impostor.json()["error"]["field"] == "owner"
        assert bob.post("/v1/models", json=card).json()["owner"] == "bob"
        for reserved in ("nwtn",):
            taken = bob.post("/v1/models", json={**card, "id": reserved})
            assert taken.status_code in (409, 422) and taken.json()["error"]["field"] == "id"
        assert alice.patch("/v1/models/bob-units", json={"price_per_call": "1"}).status_code == 403
        assert alice.delete("/v1/models/bob-units").status_code == 403
        changed = bob.patch(
            "/v1/models/bob-units", json={"price_per_call": "3", "description": "Cheaper units"}
        )
        assert changed.status_code == 200 and changed.json()["price_per_call"] == "3"
        bad = bob.patch("/v1/models/bob-units", json={"price_per_call": "-1"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "price_per_call"
        assert bob.post("/v1/models/bob-units/disable").status_code == 403  # operators only
        disabled = op.post("/v1/models/bob-units/disable").json()
        assert disabled["disabled"] is True
        refused = bob.post("/v1/chat/completions", json={**EXPAND, "model": "bob-units"})
        assert refused.status_code == 404  # a disabled card answers nothing
        assert op.post("/v1/models/bob-units/enable").json()["disabled"] is False
        assert bob.delete("/v1/models/bob-units").json()["deleted"] is True
        assert bob.get("/v1/models").json()["data"] and "bob-units" not in [
            m["id"] for m in bob.get("/v1/models").json()["data"]
        ]


def test_keys_are_managed_by_their_own_account_within_its_role(prsm_app, services):
    with prsm_app.client("erin") as erin, prsm_app.client("bob") as bob:
        made = erin.post("/v1/keys", json={"name": "laptop"})
        assert made.status_code == 201 and made.json()["account"] == "erin"
        token, key_id = made.json()["key"], made.json()["id"]
        assert services.keys.authenticate(token).account == "erin"
        listed = erin.get("/v1/keys").json()["data"]
        assert key_id in [k["id"] for k in listed] and all(k["account"] == "erin" for k in listed)
        assert all("key" not in k and "secret_hash" not in k for k in listed)  # never the secret again
        assert erin.post("/v1/keys", json={"role": "owner"}).status_code == 403  # above its own role
        assert erin.post("/v1/keys", json={"account": "alice"}).status_code == 403
        assert bob.delete(f"/v1/keys/{key_id}").status_code == 404  # not bob's: as if absent
        assert bob.get("/v1/keys", params={"account": "erin"}).status_code == 404  # likewise
        rotated = erin.post(f"/v1/keys/{key_id}/rotate", json={"grace_s": 0})
        assert rotated.status_code == 201 and rotated.json()["id"] != key_id
        with client(prsm_app, token) as old:
            assert old.get("/v1/models").status_code == 401  # no grace asked: the old key stopped
        assert erin.delete(f"/v1/keys/{rotated.json()['id']}").json()["revoked_at"]


def test_an_artifacts_creator_is_the_keys_account(prsm_app):
    with prsm_app.client("bob") as bob:
        made = bob.post("/v1/artifacts", params={"kind": "dataset"}, content=b"bob's prompts")
        assert made.status_code == 201 and made.json()["creator"] == "bob"
        forged = bob.post("/v1/artifacts", params={"kind": "dataset", "creator": "alice"}, content=b"x")
        # an account's uploads stay within its quota (2 MB here); the refused one is not kept
        over = bob.post("/v1/artifacts", params={"kind": "dataset"}, content=os.urandom(3_000_000))
        assert over.status_code == 413 and "quota" in over.json()["error"]["message"]
        assert forged.status_code == 403 and forged.json()["error"]["field"] == "creator"


def test_a_card_cannot_make_prsm_call_a_local_service_or_carry_someone_elses_secret(prsm_app):
    """The SSRF of the issue: an endpoint on loopback (the IPFS admin API, the Ray dashboard), a
    fragment that swallows PRSM's path; and a credential goes only to its own card's endpoint."""
    base = {"kind": "openai", "description": "A remote chat model somewhere", "licence": "MIT",
            "remote_model": "smollm2-135m-instruct", "tags": ["general"]}  # fmt: skip
    with prsm_app.client("bob") as bob:
        for endpoint in ("http://127.0.0.1:8265/api", "https://127.0.0.1:5001/api/v0", "https://localhost/v1",
                         f"http://127.0.0.1:{prsm_app.settings.port}/anything#", "https://[::ffff:7f00:1]/v1",
                         "http://169.254.169.254/latest/"):  # fmt: skip
            response = bob.post("/v1/models", json=base | {"id": "bob-ssrf", "endpoint": endpoint})
            assert response.status_code in (400, 422), (endpoint, response.text)
            assert response.json()["error"]["field"] == "endpoint"
        assert bob.get("/v1/models/bob-ssrf").status_code == 404

        # The app itself is allowed (the fixture's operator list); a card without a credential
        # reaches it with none: PRSM sends no key of its own, so the call is refused there.
        own = f"{prsm_app.base_url}/v1"
        assert bob.post("/v1/models", json=base | {"id": "bob-remote", "endpoint": own}).status_code == 201
        call = {"model": "bob-remote", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
        refused = bob.post("/v1/chat/completions", json=call)
        assert refused.status_code == 502 and "401" in refused.json()["error"]["message"]

        # With bob's own key as the card's credential it answers; the credential is never shown.
        secret = prsm_app.keys["bob"]
        changed = bob.patch("/v1/models/bob-remote", json={"credential": secret})
        assert changed.status_code == 200 and changed.json()["has_credential"] is True
        assert secret not in bob.get("/v1/models").text and secret not in changed.text
        # (the replica keeps a loaded backend for a while: a new card id loads the new credential)
        with_secret = base | {"id": "bob-remote-2", "endpoint": own, "credential": secret}
        assert bob.post("/v1/models", json=with_secret).status_code == 201
        answered = bob.post("/v1/chat/completions", json=call | {"model": "bob-remote-2"})
        assert answered.status_code == 200, answered.text

        # Moving the endpoint drops the credential: it was given for the old one.
        moved = bob.patch("/v1/models/bob-remote-2", json={"endpoint": own + "/"})
        assert moved.status_code == 200 and moved.json()["has_credential"] is False
        assert (
            bob.patch("/v1/models/bob-remote-2", json={"endpoint": "https://10.0.0.1/v1"}).status_code == 422
        )
        for card in ("bob-remote", "bob-remote-2"):
            assert bob.delete(f"/v1/models/{card}").status_code == 200


def test_one_card_cannot_price_queries_out_of_reach(prsm_app, services):
    """The 1e30 card of the issue: past the operator's bound it is refused; a dear card within
    the bound is not quoted for sub-tasks it would not run (a new card never raises a quote)."""
    dear = {"id": "mallory-dear", "kind": "tool", "description": "Unit conversion, premium",
            "licence": "MIT", "endpoint": "tool:units", "tags": ["units"]}  # fmt: skip
    with prsm_app.client("alice") as alice:
        refused = alice.post("/v1/models", json=dear | {"price_per_call": str(10**30)})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "price_per_call"
        assert alice.post("/v1/models", json=dear | {"price_per_call": str(9 * 10**17)}).status_code == 201
        poor_key, _ = services.keys.create("poor-user")
        services.ledger.mint("poor-user", 10**16, "test-faucet-poor")
        with client(prsm_app, poor_key) as poor:
            answered = poor.post("/v1/query", json={"prompt": "Convert 2 km to m."})
            assert answered.status_code == 200, answered.text
            assert int(answered.json()["cost"]["quoted"]) < 10**16
        assert alice.delete("/v1/models/mallory-dear").status_code == 200


def test_a_clients_bad_input_is_a_4xx_and_no_mark_against_the_model(prsm_app, services):
    """Anyone could trip the SymPy breaker with garbage and push math traffic elsewhere: bad input
    is the caller's mistake (422), the tool's record stays, and it keeps answering."""
    before = services.registry.get("sympy-cas")
    with prsm_app.client("erin") as erin:
        for text in (
            "write me a poem",
            "evaluate 9^9^9",
            "evaluate factorial(10^10)",
            "evaluate __import__('os')",
        ):
            body = {"model": "sympy-cas", "messages": [{"role": "user", "content": text}]}
            response = erin.post("/v1/chat/completions", json=body)
            assert response.status_code == 422, (text, response.text)
        for _ in range(2):
            trace = erin.post("/v1/query", json={"prompt": "Evaluate 9^9^9^9."}).json()
        assert (
            erin.post("/v1/chat/completions", json=EXPAND).json()["choices"][0]["message"]["content"]
            == "x**2 + 2*x + 1"
        )
    after = services.registry.get("sympy-cas")
    assert after.failures == before.failures, trace


def test_a_keys_limits_hold_across_two_ingress_replicas(prsm_app, services):
    """200 concurrent requests on one key, spread by Serve over both ingress replicas: exactly the
    limit gets through; the rest get 429 with Retry-After and OpenAI's headers."""
    import asyncio

    token, _ = services.keys.create("limited", limits=KeyLimits(rpm=40))

    async def burst():
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=prsm_app.base_url, timeout=120, headers=headers) as c:
            return await asyncio.gather(*(c.get("/v1/accounts/limited") for _ in range(200)))

    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 40 and codes.count(429) == 160, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert (
        int(refused.headers["retry-after"]) >= 1 and refused.headers["x-ratelimit-remaining-requests"] == "0"
    )
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"

    # a limited key cannot make itself an unlimited one
    with client(prsm_app, token) as limited:
        assert limited.post("/v1/keys", json={}).status_code in (403, 429)


def test_state_changing_requests_are_in_the_audit_trail_for_operators(prsm_app):
    with prsm_app.client("bob") as bob:
        assert bob.post("/v1/models", json={"id": "bob-audited", "kind": "tool", "description": "Audited units tool",
                                            "licence": "MIT", "endpoint": "tool:units"}).status_code == 201  # fmt: skip
        assert bob.delete("/v1/models/bob-audited").status_code == 200
        assert bob.get("/v1/audit").status_code == 403
    with prsm_app.client("operator") as operator:
        deadline = time.monotonic() + 10
        while True:  # written in batches, within a second
            rows = operator.get("/v1/audit", params={"account": "bob"}).json()["data"]
            actions = [(r["action"], r["object"], r["status"]) for r in rows]
            if ("DELETE /v1/models/{model_id}", "/v1/models/bob-audited", 200) in actions:
                break
            assert time.monotonic() < deadline, actions
            time.sleep(0.3)
        assert ("POST /v1/models", "/v1/models", 201) in actions
        assert all(r["account"] == "bob" and r["key_id"] for r in rows)


def test_a_client_that_trickles_its_headers_is_cut_off(prsm_app):
    """Slowloris: a header line a second never completes a request; Serve's proxy closes the
    connection after PRSM_HEADER_TIMEOUT_S (3 s here), and a whole request still works."""
    import socket

    port = prsm_app.settings.port
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"POST /v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for i in range(15):
            try:
                sock.sendall(f"X-Slow-{i}: a\r\n".encode())
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
                break
    assert closed and time.monotonic() - started < 8
    assert httpx.get(f"{prsm_app.base_url}/healthz").status_code == 200
