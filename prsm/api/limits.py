"""ASGI middleware: a request body over the size limit gets 413, a body that is not UTF-8 gets 400,
a body that does not arrive in time gets 408, before any route sees it (FastAPI would answer a
bare "error parsing the body", or wait for ever)."""

from __future__ import annotations

import asyncio
import json
import time

# Set by the process that serves the app (`configure`), read at each request: Ray Serve ships the
# FastAPI app to its replica as a copy, so the limit cannot be fixed when the app is built.
_max_body_bytes = 256_000
_body_timeout_s = 30.0
STREAMED = ("/v1/artifacts",)  # routes that stream their body and enforce their own limit


def configure(max_body_bytes: int, body_timeout_s: float = 30.0) -> None:
    global _max_body_bytes, _body_timeout_s
    _max_body_bytes, _body_timeout_s = max_body_bytes, body_timeout_s


class BodyLimits:
    def __init__(self, app):
        self.app = app

    @property
    def max_body_bytes(self) -> int:
        return _max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        if scope.get("path", "").startswith(STREAMED):  # binary uploads: streamed, own limit
            return await self.app(scope, receive, send)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return await _error(send, 413, "body", f"the body is over {self.max_body_bytes} bytes")

        chunks, size = [], 0
        deadline = time.monotonic() + _body_timeout_s
        while True:
            try:  # a client that trickles its body holds nothing for long
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return await _error(
                    send, 408, "body", f"the body did not arrive within {_body_timeout_s:g} s"
                )
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await _error(send, 413, "body", f"the body is over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return await _error(send, 400, "body", f"the body is not valid UTF-8 (byte {exc.start})")

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _error(send, status: int, field: str, message: str) -> None:
    error = {"type": "InvalidRequest", "field": field, "message": message}
    await send_error(send, status, error)


async def send_error(send, status: int, error: dict, code: str | None = None, headers: tuple = ()) -> None:
    """An error answered by a middleware, before any route: the same body the routes' errors
    have (prsm/api/http.py), OpenAI's `param` and `code` included."""
    payload = json.dumps({"error": error | {"param": error.get("field"), "code": code}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload.encode()})
