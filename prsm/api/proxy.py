"""Code that runs in Ray Serve's HTTP proxy: a deadline on reading a request's headers.

Serve's proxy serves HTTP with uvicorn, which bounds nothing before a request's headers are
complete: a client that opens a connection and trickles its headers one byte at a time holds it
for ever (slowloris), and enough such clients use up the proxy's sockets. PRSM cuts them off: a
connection whose next request's headers are not complete within `PRSM_HEADER_TIMEOUT_S` (10 s)
of the connection opening, or of the previous answer finishing, is closed. Bodies have their own
deadline in the app (prsm/api/limits.py).

Serve calls `guard_headers` in each proxy process as it starts
(`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`, set in prsm/settings.py:RAY_ENV for every Ray process
PRSM starts; a cluster started by hand sets it on `ray start`). It wraps uvicorn's two HTTP
protocols (httptools and h11) and returns no middleware.
"""

from __future__ import annotations

import os

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
    """Serve's proxy callback: guard uvicorn's protocols; no middleware."""
    timeout_s = header_timeout_s()
    from uvicorn.protocols.http.h11_impl import H11Protocol

    _guard(H11Protocol, timeout_s)
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools not installed: uvicorn uses h11
        return []
    _guard(HttpToolsProtocol, timeout_s)
    return []
