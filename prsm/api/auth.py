"""Who is asking, at the HTTP edge: the bearer key of every request (what any OpenAI client sends
as its `api_key`), checked before anything else happens, and the rules for acting on objects.

`Authenticate` is the outermost middleware: a request without a valid key gets 401 before its
body is read or validated, whatever the route (an unknown one included); only /healthz, the
docs and a node's federation record (/v1/federation/node) are public, and a peer node's call
(/v1/federation/call) is authenticated by its signature instead. Routes then take the principal it found (`current_principal`).

Objects are private to their account: another account's session, balance, entries or keys
answer 404, as if they did not exist (a 403 would tell a prober they do). Operators see
everything. Acting for another account (a card's owner, an artifact's creator, a key's account)
is refused with 403, unless an operator's key asks.
"""

from __future__ import annotations

import asyncio

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from prsm import logs, metrics
from prsm.api.limits import send_error
from prsm.api.ratelimit import LocalLimiter, RayLimiter
from prsm.audit import AuditLog
from prsm.errors import Forbidden, Unauthorized
from prsm.keys import ApiKeys
from prsm.types import KeyRole, Principal

# /v1/federation/call carries no key either: a peer node signs it with its chain key, and the
# route checks that signature against the node registry (prsm/federation/serve.py).
PUBLIC = frozenset({
    "/healthz", "/v1/federation/node", "/v1/federation/call", "/docs", "/docs/oauth2-redirect", "/openapi.json",
    "/redoc",
})  # fmt: skip
# Declares the scheme in the OpenAPI document (the docs page gets an Authorize button).
BEARER = HTTPBearer(auto_error=False, description="An API key: `prsm keys create ACCOUNT`.")

# Set by the process that serves the app (`configure`): Ray Serve ships the FastAPI app to its
# replica as a copy, so the keys cannot be bound when the app is built. Unset: every key fails.
_keys: ApiKeys | None = None
_limiter: LocalLimiter | RayLimiter | None = None
_audit: AuditLog | None = None
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # what the audit trail records
# Routes that run models: they count against a key's concurrency, and report tokens and charges.
METERED = frozenset({"/v1/query", "/v1/chat/completions"})


def configure(
    keys: ApiKeys, limiter: LocalLimiter | RayLimiter | None = None, audit: AuditLog | None = None
) -> None:
    global _keys, _limiter, _audit
    _keys, _limiter, _audit = keys, limiter or LocalLimiter(), audit


def record_usage(request: Request, tokens: int, charged: int) -> None:
    """What a metered route used, for the key's token and budget limits (read by `Authenticate`)."""
    request.state.usage = (tokens, charged)


async def authenticate(keys: ApiKeys | None, token: str | None) -> Principal:
    if keys is None:
        raise Unauthorized("this server checks no keys yet", "authorization")
    principal = keys.cached(token)
    if principal is None:  # not read recently: from the database, off the event loop
        principal = await asyncio.to_thread(keys.authenticate, token)
    return principal


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's bearer token (None: there is none). More than one Authorization header is
    refused: which of two keys acts is never guessed."""
    found = [value for name, value in headers if name == b"authorization"]
    if len(found) > 1:
        raise Unauthorized("send one Authorization header, not several", "authorization")
    if not found:
        return None
    scheme, _, token = found[0].decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """Serve's request id (its proxy puts one in every request's headers), cleaned for logs."""
    for name, value in headers:
        if name == b"x-request-id":
            return logs.clean_request_id(value.decode("latin-1"))
    return ""


class Authenticate:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in PUBLIC:
            return await self.app(scope, receive, send)
        headers = scope.get("headers", [])
        logs.REQUEST_ID.set(request_id(headers))
        try:
            principal = await authenticate(_keys, bearer(headers))
        except Unauthorized as exc:
            metrics.REFUSALS.inc(status="401")
            return await send_error(send, 401, exc.to_dict(), exc.code, ((b"www-authenticate", b"Bearer"),))
        send = _counting_refusals(send)
        state = scope.setdefault("state", {})
        state["principal"] = principal
        if _audit is not None and scope.get("method") in CHANGES:
            send = self._audited(scope, send, principal)
        if not principal.limits.any or _limiter is None:
            return await self.app(scope, receive, send)

        metered = scope.get("method") == "POST" and scope.get("path") in METERED
        verdict = await _limiter.admit(principal.key_id, principal.limits, metered)
        extra = [(name.encode(), value.encode()) for name, value in verdict.headers]
        if not verdict.ok:
            error = {"type": "RateLimited", "field": "authorization", "message": verdict.message}
            extra.append((b"retry-after", str(verdict.retry_after_s).encode()))
            return await send_error(send, 429, error, verdict.code, tuple(extra))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = message | {"headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            return await self.app(scope, receive, send_with_headers)
        finally:
            tokens, charged = state.get("usage", (0, 0))
            if metered or tokens or charged:  # a plain request has nothing to give back
                await _limiter.settle(principal.key_id, metered, tokens, charged)

    @staticmethod
    def _audited(scope, send, principal: Principal):
        """`send`, recording the request in the audit trail when its answer starts."""

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", None) or "(no route)"
                _audit.record(principal.key_id, principal.account, scope["method"], route, scope.get("path", ""),
                              message["status"])  # fmt: skip
            await send(message)

        return send_and_record


REFUSED = frozenset({401, 402, 429, 503})


def _counting_refusals(send):
    """`send`, counting a 401, 402, 429 or 503 answer in the metrics as it starts."""

    async def send_and_count(message):
        if message["type"] == "http.response.start" and message["status"] in REFUSED:
            metrics.REFUSALS.inc(status=str(message["status"]))
        await send(message)

    return send_and_count


KEY = Security(BEARER)
# For a route that reads `request.state.principal` itself (the hot /v1/query): the same entry
# in the OpenAPI document as a `current_principal` dependency makes.
BEARER_SECURITY = {"security": [{"HTTPBearer": []}]}


def current_principal(request: Request, _credentials: HTTPAuthorizationCredentials | None = KEY) -> Principal:
    """The principal `Authenticate` found (the Security parameter puts the key in the docs)."""
    return request.state.principal


def require(principal: Principal, role: KeyRole, doing: str) -> None:
    if not principal.role.at_least(role):
        raise Forbidden(
            f"{doing} needs a key with the {role} role; this one is a {principal.role} key", "authorization"
        )


def acting_for(principal: Principal, claimed: str | None, field: str) -> str:
    """The account a request acts for: the key's own. A body may name it (for clients written
    before keys); naming another is refused, unless an operator's key asks."""
    if claimed is None or claimed == principal.account:
        return principal.account
    if principal.operator:
        return claimed
    raise Forbidden(f"this key acts for {principal.account!r}, not {claimed!r}", field)
