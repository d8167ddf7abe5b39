"""The header deadline PRSM installs in Serve's HTTP proxy (prsm/api/proxy.py), on a real uvicorn
server with each of its two HTTP protocols: a client that trickles its headers is cut off; one
that sends a whole request is answered, and may send another on the same connection."""

import socket
import threading
import time

import pytest
import uvicorn

from prsm.api import proxy
from tests.services import free_port


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["h11", "httptools"])
def server(request, monkeypatch):
    monkeypatch.setenv(proxy.ENV, "1.5")
    assert [m.cls for m in proxy.guard_headers()] == [proxy.AnswerHealth]
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=request.param, log_level="error", lifespan="off",
                            timeout_keep_alive=60)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=5)


def closed_within(sock: socket.socket, seconds: float, trickle: bool) -> float | None:
    started = time.monotonic()
    sock.settimeout(0.25)
    while time.monotonic() - started < seconds:
        try:
            if trickle:
                sock.sendall(b"X: y\r\n")
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_a_client_that_trickles_its_headers_is_cut_off(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        took = closed_within(sock, 6, trickle=True)
    assert took is not None and 1.0 < took < 3.5


def test_whole_requests_are_answered_and_an_idle_connection_is_closed_after_the_deadline(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for _ in range(2):  # keep-alive: a second request on the same connection
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert b"200 OK" in sock.recv(1024)
        took = closed_within(sock, 6, trickle=False)
    assert took is not None and took < 3.5


def test_healthz_is_answered_in_the_proxy_from_serves_state_read_at_most_every_two_seconds():
    """However busy the ingress, the proxy answers /healthz from the controller's view: 200 while
    every application runs, 503 with the state and Retry-After otherwise (the read shared and
    cached), and every other request passes through."""
    import asyncio
    import json

    reads = []
    states = iter([(True, "RUNNING"), (False, "prsm: DEPLOY_FAILED")])

    def read():
        reads.append(time.monotonic())
        time.sleep(0.05)
        return next(states)

    passed = []

    async def inner(scope, receive, send):
        passed.append(scope["path"])

    health = proxy.AnswerHealth(inner, proxy.Health(read))

    async def get(path):
        sent = []

        async def send(message):
            sent.append(message)

        await health({"type": "http", "method": "GET", "path": path}, None, send)
        return sent

    async def scenario():
        first = await asyncio.gather(*(get("/healthz") for _ in range(20)))
        await get("/v1/query")
        return first

    first = asyncio.run(scenario())
    assert len(reads) == 1 and passed == ["/v1/query"]
    assert all(s[0]["status"] == 200 and json.loads(s[1]["body"]) == {"status": "ok"} for s in first)
    health.health._at -= proxy.FRESH_S + 1  # a little old: answered at once, read again behind it

    async def stale_then_fresh():
        at_once = await get("/healthz")
        await health.health._reading
        return at_once

    assert asyncio.run(stale_then_fresh())[0]["status"] == 200 and len(reads) == 2
    health.health._at -= proxy.FRESH_S + 1
    health.health._state = (True, "RUNNING")
    health.health._at -= proxy.STALE_S  # too old to give: the probe waits for the read
    states = iter([(False, "prsm: DEPLOY_FAILED")])
    down = asyncio.run(get("/healthz"))
    assert down[0]["status"] == 503 and (b"retry-after", b"5") in down[0]["headers"]
    assert json.loads(down[1]["body"]) == {"status": "unavailable", "detail": "prsm: DEPLOY_FAILED"}


def test_serve_state_reads_serves_status_enums(monkeypatch):
    from types import SimpleNamespace

    from ray import serve
    from ray.serve.schema import ApplicationStatus

    def status_of(**apps):
        return lambda: SimpleNamespace(applications={n: SimpleNamespace(status=s) for n, s in apps.items()})

    monkeypatch.setattr(serve, "status", status_of(prsm=ApplicationStatus.RUNNING))
    assert proxy.serve_state() == (True, "RUNNING")
    monkeypatch.setattr(
        serve, "status", status_of(prsm=ApplicationStatus.DEPLOYING, other=ApplicationStatus.RUNNING)
    )
    assert proxy.serve_state() == (False, "prsm: DEPLOYING")
    monkeypatch.setattr(serve, "status", status_of())
    assert proxy.serve_state()[0] is False


def test_a_controller_read_that_hangs_is_waited_on_not_repeated(monkeypatch):
    """The controller not answering: /healthz says so within the read's deadline, and later
    probes wait on that same read instead of starting thread after thread."""
    import asyncio
    import threading

    monkeypatch.setattr(proxy, "READ_DEADLINE_S", 0.1)
    release, reads = threading.Event(), []

    def hangs():
        reads.append(1)
        release.wait(5)
        return (True, "RUNNING")

    health = proxy.Health(hangs)

    async def scenario():
        first = await health.state()
        health._at -= proxy.STALE_S + 1  # too old to give: the next probe waits for a read
        second = await health.state()
        release.set()
        return first, second

    first, second = asyncio.run(scenario())
    assert first[0] is False and "did not answer" in first[1] and second[0] is False
    assert len(reads) == 1
