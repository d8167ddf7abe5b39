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
    assert proxy.guard_headers() == []
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
