"""Per-key limits: the limiter's arithmetic (no Ray), and the middleware's 429s and headers over
a real ASGI app."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Request

from prsm.api import auth
from prsm.api.ratelimit import Limiter, LocalLimiter, duration
from prsm.types import KeyLimits


def test_requests_per_minute_roll_over_a_sliding_minute():
    limiter, limits = Limiter(), KeyLimits(rpm=3)
    assert [limiter.admit("k", limits, False, now=t).ok for t in (0, 1, 2, 3)] == [True, True, True, False]
    refused = limiter.admit("k", limits, False, now=30)
    assert refused.code == "rate_limit_exceeded" and refused.retry_after_s == 30
    assert dict(refused.headers)["x-ratelimit-remaining-requests"] == "0"
    assert limiter.admit("k", limits, False, now=60.5).ok  # the first one aged out
    assert not limiter.admit("k", limits, False, now=60.6).ok
    assert limiter.admit("other", limits, False, now=60.6).ok  # per key


def test_tokens_per_minute_count_finished_calls():
    limiter, limits = Limiter(), KeyLimits(tpm=100)
    assert limiter.admit("k", limits, True, now=0).ok
    limiter.settle("k", True, tokens=80, now=1)
    ok = limiter.admit("k", limits, True, now=2)
    assert ok.ok and dict(ok.headers)["x-ratelimit-remaining-tokens"] == "20"
    limiter.settle("k", True, tokens=30, now=3)
    refused = limiter.admit("k", limits, True, now=4)
    assert not refused.ok and "tokens per minute" in refused.message and refused.retry_after_s == 57
    assert limiter.admit("k", limits, True, now=61.5).ok


def test_concurrency_counts_metered_calls_until_they_settle():
    limiter, limits = Limiter(), KeyLimits(concurrent=2)
    assert limiter.admit("k", limits, True, now=0).ok and limiter.admit("k", limits, True, now=0).ok
    assert not limiter.admit("k", limits, True, now=0).ok
    assert limiter.admit("k", limits, False, now=0).ok  # a balance read is not a query
    limiter.settle("k", True, now=1)
    assert limiter.admit("k", limits, True, now=1).ok


def test_a_budget_is_spent_per_period_and_refused_as_insufficient_quota():
    limiter, limits = Limiter(), KeyLimits(budget=100, budget_period_s=3600)
    assert limiter.admit("k", limits, True, now=0).ok
    limiter.settle("k", True, spent=100, now=1)
    refused = limiter.admit("k", limits, True, now=2)
    assert refused.code == "insufficient_quota" and refused.retry_after_s == 3598
    assert limiter.admit("k", limits, True, now=3600).ok  # a new period


def test_reset_durations_read_as_openai_writes_them():
    assert [duration(s) for s in (0.02, 1, 59.2, 360)] == ["20ms", "1s", "1m0s", "6m0s"]


@pytest.fixture
def app(services):
    """A real ASGI app behind the real middleware, keys from the database."""
    api = FastAPI()

    @api.post("/v1/query")
    async def query(request: Request) -> dict:
        await asyncio.sleep(0.05)
        auth.record_usage(request, 40, 7)
        return {"ok": True}

    @api.get("/v1/accounts/{account}")
    async def account(account: str) -> dict:
        return {"account": account}

    auth.configure(services.keys, LocalLimiter())
    return auth.Authenticate(api)


def test_a_burst_of_200_concurrent_requests_on_one_key_gets_exactly_the_limit_through(app, services):
    token, _ = services.keys.create("burst", limits=KeyLimits(rpm=50))

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"authorization": f"Bearer {token}"}
            return await asyncio.gather(
                *(client.get("/v1/accounts/burst", headers=headers) for _ in range(200))
            )

    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 50 and codes.count(429) == 150
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == "50"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    ok = next(r for r in responses if r.status_code == 200)
    assert "x-ratelimit-remaining-requests" in ok.headers


def test_concurrent_queries_past_the_limit_get_429_and_usage_counts_against_tokens(app, services):
    token, _ = services.keys.create("busy", limits=KeyLimits(concurrent=2, tpm=100))

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"authorization": f"Bearer {token}"}
            first = await asyncio.gather(*(client.post("/v1/query", headers=headers) for _ in range(5)))
            second = await asyncio.gather(*(client.post("/v1/query", headers=headers) for _ in range(2)))
            return first, second

    first, second = asyncio.run(scenario())
    assert sorted(r.status_code for r in first) == [200, 200, 429, 429, 429]
    # 2 x 40 tokens used: one more fits under 100, then the minute's tokens are spent
    assert [r.status_code for r in second].count(200) >= 1
    assert all(r.status_code in (200, 429) for r in second)


def test_a_key_without_limits_is_not_metered(app, services):
    token, _ = services.keys.create("free-range")

    async def many():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"authorization": f"Bearer {token}"}
            return await asyncio.gather(*(client.get("/v1/accounts/x", headers=headers) for _ in range(100)))

    responses = asyncio.run(many())
    assert {r.status_code for r in responses} == {200}
    assert "x-ratelimit-limit-requests" not in responses[0].headers


def test_a_request_with_two_authorization_headers_is_refused_not_guessed(app, services):
    """A proxy in front may add its own key; the app never picks one of two."""
    mine, _ = services.keys.create("two-headers")
    other, _ = services.keys.create("someone-else")

    async def ask(headers):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/v1/accounts/x", headers=headers)

    assert asyncio.run(ask([("authorization", f"Bearer {mine}")])).status_code == 200
    for headers in ([("authorization", f"Bearer {mine}"), ("authorization", f"Bearer {other}")],
                    [("authorization", f"Bearer {mine}"), ("authorization", f"Bearer {mine}")]):  # fmt: skip
        refused = asyncio.run(ask(headers))
        assert refused.status_code == 401 and "one Authorization header" in refused.json()["error"]["message"]


def test_a_body_that_trickles_is_cut_off_with_408():
    from prsm.api import limits

    async def never_called(scope, receive, send):
        raise AssertionError("the route must not run")

    sent = []

    async def slow_receive():
        await asyncio.sleep(10)

    async def send(message):
        sent.append(message)

    limits.configure(1000, body_timeout_s=0.2)
    try:
        scope = {"type": "http", "method": "POST", "path": "/v1/query", "headers": []}
        asyncio.run(asyncio.wait_for(limits.BodyLimits(never_called)(scope, slow_receive, send), 2))
    finally:
        limits.configure(256_000)
    assert sent[0]["status"] == 408 and b"did not arrive within 0.2 s" in sent[1]["body"]


def test_every_state_changing_request_is_in_the_audit_trail(services):
    """Key id (never the secret), account, action (method and route), object, outcome; reads and
    unauthenticated requests are not recorded."""
    api = FastAPI()

    @api.post("/v1/models/{model_id}/disable")
    async def disable(model_id: str) -> dict:
        return {"id": model_id}

    @api.get("/v1/models")
    async def models() -> dict:
        return {}

    auth.configure(services.keys, LocalLimiter(), services.audit)
    app = auth.Authenticate(api)
    token, record = services.keys.create("auditor", "operator")

    async def requests():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            headers = {"authorization": f"Bearer {token}"}
            await client.post("/v1/models/sympy-cas/disable", headers=headers)
            await client.get("/v1/models", headers=headers)
            await client.post("/v1/models/x/disable")  # no key: 401, nothing recorded
            await client.delete("/v1/models/x", headers=headers)  # no such route: 404, recorded

    asyncio.run(requests())
    services.audit.flush()
    rows = services.audit.read(account="auditor")
    assert [(r["action"], r["object"], r["status"]) for r in rows] == [
        ("DELETE (no route)", "/v1/models/x", 404),
        ("POST /v1/models/{model_id}/disable", "/v1/models/sympy-cas/disable", 200),
    ]
    assert {r["key_id"] for r in rows} == {record.id}
    assert token.split("_")[-1] not in str(rows)


def test_a_batch_of_calls_is_applied_in_order():
    limiter, limits = Limiter(), KeyLimits(concurrent=1)
    verdicts = limiter.apply([("admit", "k", limits, True), ("admit", "k", limits, True),
                              ("settle", "k", True, 5, 0), ("admit", "k", limits, True)])  # fmt: skip
    assert [v.ok if v else None for v in verdicts] == [True, False, None, True]
