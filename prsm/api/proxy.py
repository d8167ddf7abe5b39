"""Code that runs in Ray Serve's HTTP proxy: a deadline on reading a request's headers, and
the answer to GET /healthz (see `AnswerHealth` below).

Serve's proxy serves HTTP with uvicorn, which bounds nothing before a request's headers are
complete: a client that opens a connection and trickles its headers one byte at a time holds it
for ever (slowloris), and enough such clients use up the proxy's sockets. PRSM cuts them off: a
connection whose next request's headers are not complete within `PRSM_HEADER_TIMEOUT_S` (10 s)
of the connection opening, or of the previous answer finishing, is closed. Bodies have their own
deadline in the app (prsm/api/limits.py).

Serve calls `guard_headers` in each proxy process as it starts
(`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`, set in prsm/settings.py:RAY_ENV for every Ray process
PRSM starts; a cluster started by hand sets it on `ray start`). It wraps uvicorn's two HTTP
protocols (httptools and h11) and returns the /healthz middleware.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from prsm.errors import RETRY_AFTER_S

ENV = "PRSM_HEADER_TIMEOUT_S"
DEFAULT_S = 10.0


def header_timeout_s() -> float:
    try:
        value = float(os.environ.get(ENV, DEFAULT_S))
    except ValueError:
        return DEFAULT_S
    return value if value > 0 else DEFAULT_S


def _arm(protocol, timeout_s: float) -> None:
    """Close the connection unless a new request's headers complete within `timeout_s`."""
    waiting_after = getattr(protocol, "cycle", None)  # a new request replaces the cycle

    def expire() -> None:
        transport = getattr(protocol, "transport", None)
        if (
            transport is not None
            and not transport.is_closing()
            and getattr(protocol, "cycle", None) is waiting_after
        ):
            transport.close()

    handle = getattr(protocol, "_prsm_header_timer", None)
    if handle is not None:
        handle.cancel()
    protocol._prsm_header_timer = protocol.loop.call_later(timeout_s, expire)


def _guard(cls, timeout_s: float) -> None:
    if getattr(cls, "_prsm_guarded", False):
        return
    connection_made, on_response_complete = cls.connection_made, cls.on_response_complete

    def guarded_connection_made(self, transport):
        connection_made(self, transport)
        _arm(self, timeout_s)

    def guarded_on_response_complete(self):
        on_response_complete(self)
        _arm(self, timeout_s)

    cls.connection_made = guarded_connection_made
    cls.on_response_complete = guarded_on_response_complete
    cls._prsm_guarded = True


def guard_headers() -> list:
    """Serve's proxy callback: guard uvicorn's protocols; answer /healthz here (`Health`)."""
    from starlette.middleware import Middleware

    timeout_s = header_timeout_s()
    from uvicorn.protocols.http.h11_impl import H11Protocol

    _guard(H11Protocol, timeout_s)
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools not installed: uvicorn uses h11
        pass
    else:
        _guard(HttpToolsProtocol, timeout_s)
    return [Middleware(AnswerHealth)]


# --- /healthz, answered by the proxy ---------------------------------------------------------
#
# A health check that waits in the ingress's queue fails exactly when the node is busiest, and a
# load balancer (or Kubernetes) that believes it takes a loaded node out or restarts it: the
# failure spreads. So the proxy answers GET /healthz itself, from what Serve's controller knows:
# 200 while every application is RUNNING (each replica passing Serve's own health checks, which
# call NWTN's `check_health`), else 503 with the state and Retry-After. It costs one controller
# read per FRESH_S per proxy, never a place in NWTN's queue (benchmarks/load.py: answered within
# a second while 500 connections load the node). Where the proxy has no PRSM callback (a cluster
# started without it), NWTN's own /healthz route answers instead.

HEALTH_PATH = "/healthz"
FRESH_S = 2.0
STALE_S = 15.0  # a state this old is still given at once while a new read runs
READ_DEADLINE_S = 5.0


def serve_state() -> tuple[bool, str]:
    """(healthy, state): every Serve application RUNNING, as the controller says."""
    from ray import serve

    apps = serve.status().applications
    if not apps:
        return False, "no application is deployed"
    states = {name: str(getattr(app.status, "value", app.status)) for name, app in apps.items()}  # an enum
    down = {name: state for name, state in states.items() if state != "RUNNING"}
    if down:
        return False, ", ".join(f"{name}: {state}" for name, state in sorted(down.items()))
    return True, "RUNNING"


class Health:
    """The controller's state, read at most every FRESH_S (concurrent probes share one read). A
    probe never waits for a read while the last state is younger than STALE_S: it gets that
    state at once and the read runs behind it, so a probe's answer does not depend on how fast a
    loaded machine lets the controller answer."""

    def __init__(self, read=serve_state):
        self._read = read
        self._state: tuple[bool, str] = (False, "not read yet")
        self._at = float("-inf")
        self._reading: asyncio.Future | None = None
        self._call: asyncio.Future | None = None  # the read's thread: one at a time, even past its deadline

    async def state(self) -> tuple[bool, str]:
        age = time.monotonic() - self._at
        if age <= FRESH_S:
            return self._state
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._refresh())
        if age <= STALE_S:
            return self._state
        await asyncio.shield(self._reading)
        return self._state

    async def _refresh(self) -> None:
        if self._call is None or self._call.done():  # a read still hanging is waited on, not repeated
            self._call = asyncio.ensure_future(asyncio.to_thread(self._read))
        try:
            state = await asyncio.wait_for(asyncio.shield(self._call), READ_DEADLINE_S)
        except Exception as exc:  # noqa: BLE001 (the controller unreachable: not healthy)
            state = (False, f"Serve's controller did not answer: {type(exc).__name__}")
        self._state, self._at = state, time.monotonic()


class AnswerHealth:
    """ASGI middleware in Serve's proxy: GET (or HEAD) /healthz answered here, the rest passed on."""

    def __init__(self, app, health: Health | None = None):
        self.app, self.health = app, health or Health()

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope.get("path") != HEALTH_PATH
            or scope.get("method") not in ("GET", "HEAD")
        ):
            return await self.app(scope, receive, send)
        ok, state = await self.health.state()
        body = json.dumps({"status": "ok"} if ok else {"status": "unavailable", "detail": state}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if not ok:
            headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        await send({"type": "http.response.start", "status": 200 if ok else 503, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
