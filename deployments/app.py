"""The PRSM Serve application: NWTN (the HTTP ingress) -> Router -> model replicas.

Decorators, `.remote` and routes only: everything else is library code (prsm/) that the unit
tests run without Ray. `build_app` is the application builder named in deployments/prsm.yaml;
`prsm up` and the tests call it too.
"""

# No `from __future__ import annotations` here: Serve pickles the ingress routes when the class
# is decorated, and FastAPI must see the real body types (not strings) in the replica.
import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import ray
from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig
from starlette.concurrency import iterate_in_threadpool

from prsm import consent, logs, metrics
from prsm.api import auth, limits, streaming
from prsm.api.auth import BEARER_SECURITY, acting_for, current_principal, record_usage, require
from prsm.api.http import TRACE_RESPONSE, body_schema, create_api, model_entry, parse_body, trace_usage
from prsm.api.ratelimit import RayLimiter
from prsm.api.schemas import (
    ChatCompletionRequest,
    DataSharingRequest,
    FederationCall,
    FeedbackRequest,
    KeyRequest,
    KeyRotation,
    ModelCardChange,
    ModelCardIn,
    QueryRequest,
    chat_completion,
)
from prsm.backends import Backend, run_many, run_one, stream_one
from prsm.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PRSMError,
    SessionNotFound,
    UnknownAccount,
    UnknownKey,
    UnsupportedMediaType,
)
from prsm.federation import serve as federation
from prsm.federation.node import NODE_PATH
from prsm.federation.node import record as federation_record
from prsm.nwtn.embed import Embedder
from prsm.nwtn.orchestrator import Orchestrator
from prsm.nwtn.remote import Coalescer, ModelClient, RouterClient
from prsm.nwtn.route import Router
from prsm.ops import Schedules
from prsm.sealing import context_of
from prsm.services import Services
from prsm.storage.artifacts import ArtifactKind
from prsm.types import (
    ACCOUNT_ID_PATTERN,
    Candidate,
    KeyRole,
    ModelCall,
    ModelCard,
    ModelKind,
    ModelOutput,
    Principal,
    SubTask,
)


@serve.deployment
class ModelReplica:
    """Hosts models by id (`@serve.multiplexed`): the first request for an id loads it."""

    def __init__(self, settings: dict):
        services = Services.from_settings(settings)
        logs.configure(serve.get_replica_context().deployment, services.settings.log_level)
        self.models = services.models

    @serve.multiplexed(max_num_models_per_replica=4)
    async def backend(self, model_id: str) -> Backend:
        return await asyncio.to_thread(self.models.load, model_id)

    async def run(self, call: ModelCall) -> ModelOutput:
        model_id = serve.get_multiplexed_model_id()
        return await run_one(await self.backend(model_id), call, model_id)

    async def run_many(self, calls: list[ModelCall]) -> list[ModelOutput | PRSMError]:
        model_id = serve.get_multiplexed_model_id()
        return await run_many(await self.backend(model_id), calls, model_id)

    async def stream(self, call: ModelCall) -> AsyncIterator[ModelOutput]:
        """The answer in pieces as they are made (a streamed chat completion); a caller that
        cancels the stream stops the generation here."""
        model_id = serve.get_multiplexed_model_id()
        async for piece in stream_one(await self.backend(model_id), call, model_id):
            yield piece


@serve.deployment
class RouterDeployment:
    def __init__(self, settings: dict):
        services = Services.from_settings(settings)
        logs.configure("Router", services.settings.log_level)
        self.router = Router(
            services.registry, Embedder(), policy=services.market, route=services.settings.route_tradeoff
        )

    async def rank_many(
        self, requests: list[tuple[SubTask, frozenset[str], float | None, str]]
    ) -> list[list[Candidate]]:
        """Each request: (sub-task, models with an open breaker, the query's quality/cost
        trade-off or None, the query's request id)."""
        started = time.perf_counter()
        ranked = await asyncio.to_thread(self.router.rank_many, [r[:3] for r in requests])
        ms = round((time.perf_counter() - started) * 1000, 2)
        for (task, _, _, request_id), candidates in zip(requests, ranked, strict=True):
            logs.event("ranked", request_id=request_id or None, capability=task.capability, ms=ms,
                       model_id=candidates[0].model_id if candidates else None, candidates=len(candidates))  # fmt: skip
        return ranked

    async def similarity(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Agreement of answers with a reference's (prsm/nwtn/grade.py), by their embeddings."""
        return await asyncio.to_thread(self.router.similarity, pairs)


def log_query(principal: Principal, started: float, status: str, trace: dict | None) -> None:
    """A query's log line at the ingress: its session, the key that asked (its id), the models."""
    logs.event(
        "query",
        session_id=trace["session_id"] if trace else None,
        key_id=principal.key_id,
        status=status,
        ms=round((time.perf_counter() - started) * 1000, 2),
        model_id=",".join(sorted({t["model"] for t in trace["tasks"] if t.get("model")})) if trace else None,
    )


api = create_api()
TICK_S = 5.0  # how often an NWTN replica looks for due scheduled jobs (a read; no write unless due)
PARENTS = Query(default=[], description="CIDs it was made from (repeat the parameter).")
KIND = Query(..., description="What the bytes are.")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# A page's cursor: a row id, within the 64-bit integers both databases store (past them SQLite's
# driver raised OverflowError, a 500).
BEFORE = Query(None, ge=1, le=2**63 - 1, description="The `next_before` of the page before.")
WHO = Depends(current_principal)


@serve.deployment
@serve.ingress(api)
class NWTN:
    """The HTTP ingress and the orchestrator. Every route but /healthz needs an API key: its
    account pays and owns, whatever a body says (prsm/api/auth.py)."""

    def __init__(self, settings: dict, router, lm_replica, tool_replica):
        self.services = services = Services.from_settings(settings)
        logs.configure("NWTN", services.settings.log_level)
        self.keys = services.keys
        limits.configure(services.settings.max_body_bytes, services.settings.body_timeout_s)
        auth.configure(services.keys, RayLimiter() if ray.is_initialized() else None, services.audit)
        rank = RouterClient(router.rank_many.remote)
        call = ModelClient(
            heavy=lambda model_id: lm_replica.options(multiplexed_model_id=model_id).run.remote,
            light=lambda model_id: tool_replica.options(multiplexed_model_id=model_id).run_many.remote,
            heavy_stream=lambda model_id: (
                lm_replica.options(multiplexed_model_id=model_id, stream=True).stream.remote
            ),
        )
        similar = Coalescer(router.similarity.remote)  # shadow grades' agreement (prsm/nwtn/grade.py)
        self.nwtn = Orchestrator(
            services.settings, services.registry, services.sessions, services.billing, rank, call,
            similarity=lambda a, b: similar.call((a, b)),
        )  # fmt: skip
        self.schedules = Schedules(services)
        self._tick: asyncio.Future | None = None
        self._ticked_at = self._measured_at = float("-inf")

    async def check_health(self) -> None:
        """Serve calls this every few seconds, traffic or not. It also runs the scheduled jobs
        (prsm/ops.py: the sweep that releases the holds of queries whose NWTN process died, the
        settlement epochs, the store's gc): each replica looks for due jobs, and a lease in the
        database lets one replica run each due run."""
        self.nwtn.breaker.report()  # a breaker whose cooldown ended closes in the metrics too
        if (self._tick is None or self._tick.done()) and time.monotonic() - self._ticked_at >= TICK_S:
            self._ticked_at = time.monotonic()
            self._tick = asyncio.ensure_future(asyncio.to_thread(self._housekeeping))

    def _housekeeping(self) -> None:
        """The due scheduled jobs, and the settlement lag for the metrics. A failure here (the
        database unreachable) is logged and tried again at the next tick; a job's own failure is
        recorded on its schedule (prsm/ops.py)."""
        from prsm.chain.epochs import unsettled_age_s

        try:
            self.schedules.tick()
            if time.monotonic() - self._measured_at >= self.services.settings.sweep_every_s:
                self._measured_at = time.monotonic()
                metrics.SETTLEMENT_LAG.set(unsettled_age_s(self.services.db.engine))
        except Exception as exc:  # noqa: BLE001 (a health check must not die of it)
            logs.event("housekeeping failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:500])

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get(NODE_PATH, responses={404: {"description": "this node has not announced itself"}})
    async def federation_node(self) -> dict:
        """This node's federation record, public like /healthz: its operator address, endpoint,
        catalogue CID and the challenge `prsm federation announce` checks (prsm/federation/)."""
        found = await asyncio.to_thread(federation_record, self.services.db)
        if found is None:
            raise NotFound("this node has not announced itself to a federation", "node")
        return {
            k: found.get(k)
            for k in ("operator", "endpoint", "catalogue", "chain_id", "challenge", "announced")
        }

    @api.post(
        federation.PATH,
        openapi_extra=body_schema(FederationCall),
        responses={401: {"description": "unsigned, stale, forged, or not by a member of the network"},
                   402: {"description": "the calling node owes this node its credit already"},
                   409: {"description": "prices changed (fetch the catalogue again), or a request sent twice"}},
    )  # fmt: skip
    async def federation_call(self, request: Request) -> dict:
        """One sub-task for a peer node of the network: no API key, a signature by the calling
        node's chain key (prsm/federation/serve.py); the calling node is billed, not a user."""
        headers = {k: v for k, v in request.headers.items() if k.startswith("x-prsm-")}
        return await federation.answer(self.services, self.nwtn, headers, await request.body())

    @api.post(
        "/v1/query",
        response_class=Response,
        responses=TRACE_RESPONSE,
        openapi_extra=body_schema(QueryRequest) | BEARER_SECURITY,
    )
    async def query(self, request: Request) -> Response:
        """Answer a (multi-part) question: the answer, the session id and the whole trace."""
        principal: Principal = request.state.principal  # the hot path: no dependency to solve
        started = time.perf_counter()
        try:
            body = await parse_body(request, QueryRequest)
            trace = await self.nwtn.query(body.prompt, principal.account, body.user, body.route)
        except BaseException as exc:
            log_query(principal, started, type(exc).__name__, None)
            raise
        log_query(principal, started, trace["status"], trace)
        record_usage(request, *trace_usage(trace))
        return Response(content=json.dumps(trace), media_type="application/json")

    @api.get("/v1/audit")
    async def audit(
        self, account: str | None = Query(None, pattern=ACCOUNT_ID_PATTERN), key_id: str | None = Query(None, max_length=32),
        limit: int = Query(50, ge=1, le=500), before: int | None = BEFORE, principal: Principal = WHO,
    ) -> dict:  # fmt: skip
        """The audit trail of state-changing requests, newest first (operators only)."""
        require(principal, KeyRole.OPERATOR, "reading the audit trail")
        rows = await asyncio.to_thread(self.services.audit.read, account, key_id, limit, before)
        return {"object": "list", "data": rows}

    @api.get("/v1/sessions/{session_id}")
    async def session(self, session_id: str, principal: Principal = WHO) -> dict:
        """A past session's trace: the asking key's own (an operator's key: any)."""
        trace = await asyncio.to_thread(self.services.sessions.trace, session_id)
        if not principal.may_act_for(trace["account"]):
            raise SessionNotFound(f"no session {session_id!r}", "session_id")
        return trace

    @api.post("/v1/sessions/{session_id}/feedback")
    async def feedback(
        self, session_id: str, body: FeedbackRequest, response: Response, principal: Principal = WHO
    ) -> dict:
        """Rate a finished session's answer, or one of its sub-tasks (`task`), 0 to 1: the
        session's own account (or an operator). One rating per target; a new one replaces it,
        the same one again changes nothing (200; 201 when it is new or changed)."""
        trace_account = await asyncio.to_thread(self.services.sessions.account_of, session_id)
        if not principal.may_act_for(trace_account):
            raise SessionNotFound(f"no session {session_id!r}", "session_id")
        rating, changed = await asyncio.to_thread(
            self.services.sessions.rate, session_id, body.task, body.score, body.comment
        )
        response.status_code = 201 if changed else 200
        return {"object": "feedback", **rating}

    @api.get("/v1/accounts/{account_id}")
    async def account(self, account_id: str, principal: Principal = WHO) -> dict:
        """An FTNS account's balance (decimal string of base units, and in FTNS): the key's own."""
        if not principal.may_act_for(account_id):
            raise UnknownAccount(f"no account {account_id!r}", "account")
        return await asyncio.to_thread(self.services.ledger.account, account_id)

    @api.get("/v1/accounts/{account_id}/data-sharing")
    async def data_sharing(self, account_id: str, principal: Principal = WHO) -> dict:
        """Whether the account's sessions may feed the learning loop's data sets (its own key)."""
        if not principal.may_act_for(account_id):
            raise UnknownAccount(f"no account {account_id!r}", "account")
        await asyncio.to_thread(self.services.ledger.account, account_id)  # 404 for no such account
        default = self.services.settings.data_sharing_default
        allowed = await asyncio.to_thread(consent.allowed, self.services.db, account_id, default)
        return {"object": "data_sharing", "account": account_id, "allowed": allowed}

    @api.put("/v1/accounts/{account_id}/data-sharing")
    async def choose_data_sharing(
        self, account_id: str, body: DataSharingRequest, principal: Principal = WHO
    ) -> dict:
        """Allow or refuse the use of the account's sessions in the learning loop's data sets:
        a refusal applies to every data set built after it (its own key, or an operator)."""
        if not principal.may_act_for(account_id):
            raise UnknownAccount(f"no account {account_id!r}", "account")
        await asyncio.to_thread(self.services.ledger.account, account_id)  # 404 for no such account
        await asyncio.to_thread(consent.choose, self.services.db, account_id, body.allowed)
        return {"object": "data_sharing", "account": account_id, "allowed": body.allowed}

    @api.get("/v1/accounts/{account_id}/entries")
    async def entries(
        self, account_id: str, limit: int = Query(50, ge=1, le=500), before: int | None = BEFORE,
        principal: Principal = WHO,
    ) -> dict:  # fmt: skip
        """Ledger entries, newest first; pass `next_before` back as `before` for the next page."""
        if not principal.may_act_for(account_id):
            raise UnknownAccount(f"no account {account_id!r}", "account")
        data = await asyncio.to_thread(self.services.ledger.entries, account_id, limit, before)
        return {"data": data, "next_before": data[-1]["id"] if len(data) == limit else None}

    @api.get("/v1/keys")
    async def list_keys(self, account: str | None = Query(None), principal: Principal = WHO) -> dict:
        """The asking key's account's keys (an operator's key: every account's, or `account`'s).
        Another account's keys are not found, as every other object of another account."""
        if account not in (None, principal.account) and not principal.operator:
            raise UnknownAccount(f"no account {account!r}", "account")
        wanted = account if principal.operator else principal.account
        records = await asyncio.to_thread(self.keys.list, wanted)
        return {"object": "list", "data": [r.public() for r in records]}

    @api.post("/v1/keys", status_code=201)
    async def create_key(self, body: KeyRequest, principal: Principal = WHO) -> dict:
        """A new key for the asking key's account, with at most its role. The key is in this
        answer only: it is stored as a hash."""
        account = acting_for(principal, body.account, "account")
        require(principal, body.role, f"making {'an' if body.role == 'operator' else 'a'} {body.role} key")
        if principal.limits.any and not principal.operator:
            # else a limited key would make itself an unlimited one
            raise Forbidden("a key with limits cannot make keys: ask the operator", "authorization")
        token, record = await asyncio.to_thread(
            self.keys.create, account, body.role, body.expires_at, body.name, body.limits
        )
        return {"key": token, **record.public()}

    @api.delete("/v1/keys/{key_id}")
    async def revoke_key(self, key_id: str, principal: Principal = WHO) -> dict:
        await self._own_key(principal, key_id)
        return (await asyncio.to_thread(self.keys.revoke, key_id)).public()

    @api.post("/v1/keys/{key_id}/rotate", status_code=201)
    async def rotate_key(self, key_id: str, body: KeyRotation, principal: Principal = WHO) -> dict:
        """A new key for the same account and role; the old one keeps working for `grace_s`."""
        await self._own_key(principal, key_id)
        token, record = await asyncio.to_thread(self.keys.rotate, key_id, body.grace_s)
        return {"key": token, **record.public()}

    async def _own_key(self, principal: Principal, key_id: str) -> None:
        record = await asyncio.to_thread(self.keys.get, key_id)
        if not principal.may_act_for(record.account):
            raise UnknownKey(f"no key {key_id!r}", "key_id")

    @api.post("/v1/artifacts", status_code=201)
    async def upload_artifact(
        self,
        request: Request,
        kind: ArtifactKind = KIND,
        creator: str | None = Query(None, pattern=ACCOUNT_ID_PATTERN, description="The key's account."),
        parents: list[str] = PARENTS,
        licence: str | None = Query(None, max_length=128),
        name: str | None = Query(None, max_length=256),
        principal: Principal = WHO,
    ) -> dict:
        """Upload bytes (the raw body, streamed; size-limited) into the content-addressed store
        and record their provenance, created by the key's account; answers with the CID and the
        record."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in FORM_TYPES:  # a form's framing would be stored as the artifact's bytes
            raise UnsupportedMediaType(
                f"send the artifact's bytes as the raw body (application/octet-stream), not as {media}",
                "content-type",
            )
        creator = acting_for(principal, creator, "creator")
        provenance = {"kind": kind, "creator": creator, "parents": parents, "licence": licence, "name": name}
        settings = self.services.settings
        limit, over = settings.max_artifact_bytes, None
        if not principal.operator:  # an account's artifacts together stay within its quota
            used = await asyncio.to_thread(self.services.artifacts.used_by, creator)
            left = max(settings.storage_quota_bytes - used, 0)
            if left < limit:
                limit = left
                over = f"over the storage quota of account {creator!r}: {used} of {settings.storage_quota_bytes} bytes used"
        return await self.services.artifacts.upload(request.stream(), limit, over, **provenance)

    @api.get("/v1/artifacts/{cid}")
    async def artifact(self, cid: str, principal: Principal = WHO) -> dict:
        """An artifact's provenance: kind, size, creator, parent CIDs, licence."""
        return await asyncio.to_thread(self.services.artifacts.get, cid)

    @api.get("/v1/artifacts/{cid}/content")
    async def artifact_content(self, cid: str, principal: Principal = WHO) -> StreamingResponse:
        """The bytes, streamed; every block verified against its CID before it is sent."""
        await asyncio.to_thread(self.services.artifacts.get, cid)  # 400 / 404 before any byte
        chunks = await asyncio.to_thread(self.services.store.get, cid)
        return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")

    @api.get("/v1/models")
    async def models(self, principal: Principal = WHO) -> dict:
        cards = await asyncio.to_thread(self.services.registry.list)
        measured = await asyncio.to_thread(self.services.registry.measured_quality)
        return {"object": "list", "data": [model_entry(c, measured.get(c.id)) for c in cards]}

    @api.get("/v1/models/{model_id}")
    async def model(self, model_id: str, principal: Principal = WHO) -> dict:
        """One model's card (OpenAI's retrieve-model, with PRSM's fields)."""
        return await self._entry(await asyncio.to_thread(self.services.registry.get, model_id))

    @api.post("/v1/models", status_code=201)
    async def register(self, body: ModelCardIn, principal: Principal = WHO) -> dict:
        """Register a model card, owned by the key's account (an owner's or operator's key)."""
        require(principal, KeyRole.OWNER, "registering a model")
        owner = acting_for(principal, body.owner, "owner")
        if body.id in self._reserved() and not principal.operator:
            raise InvalidInput(f"model id {body.id!r} is reserved", "id")
        sealed = None
        if body.kind == ModelKind.OPENAI:
            await self.services.egress.vet(body.endpoint)
            if body.credential is not None:
                sealed = self._seal(body.credential.get_secret_value(), body.id, body.endpoint)
        card = body.to_card(owner)
        self._check_prices(card)
        card = await asyncio.to_thread(self.services.registry.register, card, sealed)
        return model_entry(card)

    @api.patch("/v1/models/{model_id}")
    async def change_model(self, model_id: str, body: ModelCardChange, principal: Principal = WHO) -> dict:
        """Change what the owner declares: description, tags, prices, licence, weights, endpoint."""
        card = await self._own_card(principal, model_id)
        changes = body.model_dump(exclude_unset=True)
        credential = changes.pop("credential", ...)
        changed = ModelCardIn.changed(card, changes)
        moved = changed.endpoint != card.endpoint
        if changed.kind == ModelKind.OPENAI and moved:
            await self.services.egress.vet(changed.endpoint)
        if credential is not ...:  # given: replaced, or removed when empty
            secret = credential.get_secret_value() if credential is not None else ""
            if secret and changed.kind != ModelKind.OPENAI:
                raise InvalidInput("only an openai model has a credential (for its endpoint)", "credential")
            sealed = self._seal(secret, model_id, changed.endpoint) if secret else None
        else:  # a secret goes only to the endpoint it was given for
            sealed = None if moved else ...
        self._check_prices(changed.to_card(card.owner))
        card = await asyncio.to_thread(self.services.registry.update, changed.to_card(card.owner), sealed)
        return await self._entry(card)

    def _check_prices(self, card: ModelCard) -> None:
        """The operator's price bounds: one card cannot price a query out of reach."""
        s = self.services.settings
        for field, price, bound in (("price_per_call", card.price_per_call, s.max_price_per_call),
                                    ("price_per_1k_tokens", card.price_per_1k_tokens, s.max_price_per_1k_tokens)):  # fmt: skip
            if price > bound:
                raise InvalidInput(f"at most {bound} base units on this node (the operator's bound)", field)

    def _seal(self, secret: str, model_id: str, endpoint: str | None) -> bytes:
        return self.services.sealer.seal(secret, context_of(model_id, endpoint or ""))

    @api.delete("/v1/models/{model_id}")
    async def delete_model(self, model_id: str, principal: Principal = WHO) -> dict:
        await self._own_card(principal, model_id)
        await asyncio.to_thread(self.services.registry.delete, model_id)
        return {"id": model_id, "object": "model", "deleted": True}

    @api.post("/v1/models/{model_id}/disable")
    async def disable_model(self, model_id: str, principal: Principal = WHO) -> dict:
        """An operator takes a card out of routing and quotes (`/enable` puts it back)."""
        require(principal, KeyRole.OPERATOR, "disabling a model")
        return await self._entry(await asyncio.to_thread(self.services.registry.set_disabled, model_id, True))

    @api.post("/v1/models/{model_id}/enable")
    async def enable_model(self, model_id: str, principal: Principal = WHO) -> dict:
        require(principal, KeyRole.OPERATOR, "enabling a model")
        return await self._entry(
            await asyncio.to_thread(self.services.registry.set_disabled, model_id, False)
        )

    async def _own_card(self, principal: Principal, model_id: str) -> ModelCard:
        card = await asyncio.to_thread(self.services.registry.get, model_id)
        if not principal.may_act_for(card.owner):
            raise Forbidden(f"model {model_id!r} belongs to {card.owner!r}", "model")
        return card

    async def _entry(self, card: ModelCard) -> dict:
        measured = await asyncio.to_thread(self.services.registry.measured_quality, [card.id])
        return model_entry(card, measured.get(card.id))

    def _reserved(self) -> set[str]:
        return {"nwtn"} | ({self.services.settings.planner_model} - {None})

    @api.post(
        "/v1/chat/completions",
        responses={200: {"description": "A chat.completion, or with `stream: true` server-sent "
                         "chat.completion.chunk events ending in [DONE]", "content": {"text/event-stream": {}}}},
    )  # fmt: skip
    async def chat_completions(
        self, body: ChatCompletionRequest, request: Request, principal: Principal = WHO
    ) -> dict:
        """OpenAI-compatible. `model` is a registry id, or `nwtn` for the whole pipeline; the
        key's account pays; `user` is recorded as your end user's tag. `stream: true` streams the
        answer (prsm/api/streaming.py): token by token, or for `nwtn` the plan, each sub-task as
        it is answered and the answer."""
        messages = [m.model_dump() for m in body.messages]
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        if body.model == "nwtn":
            prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            started = time.perf_counter()
            if body.stream:

                def run(on_event):
                    return self.nwtn.query(prompt, principal.account, body.user, body.route, on_event)

                def finished(trace: dict | None, status: str) -> None:
                    log_query(principal, started, status, trace)
                    if trace is not None:
                        record_usage(request, *trace_usage(trace))

                return await self._streamed(streaming.query_chunks(run, include_usage, finished, body.stop))
            try:
                trace = await self.nwtn.query(prompt, principal.account, body.user, body.route)
            except BaseException as exc:
                log_query(principal, started, type(exc).__name__, None)
                raise
            log_query(principal, started, trace["status"], trace)
            record_usage(request, *trace_usage(trace))
            tokens_in = sum(t["tokens_in"] for t in trace["tasks"])
            tokens_out = sum(t["tokens_out"] for t in trace["tasks"])
            extra = {"prsm_session_id": trace["session_id"], "prsm_charge": trace["cost"]}
            answer, _ = streaming.cut_at_stop(trace["answer"] or "", body.stop)
            return chat_completion("nwtn", answer, tokens_in, tokens_out, extra)
        budget = body.max_completion_tokens or body.max_tokens
        if body.stream:
            receipt: dict = {}

            def used(last: ModelOutput | None) -> None:
                if last is not None:
                    record_usage(request, last.tokens_in + last.tokens_out, int(receipt.get("charged") or 0))

            pieces = self.nwtn.complete_stream(
                body.model, messages, budget, body.response_format, principal.account, receipt
            )
            if body.stop:  # the generation ends at the first stop sequence
                pieces = streaming.stopped_at(pieces, body.stop)
            return await self._streamed(
                streaming.completion_chunks(pieces, body.model, include_usage, receipt, used)
            )
        output, charge = await self.nwtn.complete(
            body.model, messages, budget, body.response_format, principal.account
        )
        record_usage(request, output.tokens_in + output.tokens_out, int(charge["charged"]))
        extra = {"prsm_charge": charge}
        text, stopped = streaming.cut_at_stop(output.text, body.stop)
        finish = "stop" if stopped else output.finish_reason
        return chat_completion(body.model, text, output.tokens_in, output.tokens_out, extra, finish)

    @staticmethod
    async def _streamed(chunks) -> StreamingResponse:
        """Server-sent events, once the first is ready (an error before it: its HTTP status)."""
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy buffers it
        return StreamingResponse(
            await streaming.primed(chunks), media_type="text/event-stream", headers=headers
        )


def build_app(args: dict | None = None) -> Application:
    """Upgrade the database, register the shipped models, prepare the default weights, bind."""
    with Services.from_settings(args or {}, upgrade=True) as services:
        services.prepare_default_model()  # converts (~30 s) and stores it, once
        settings = services.settings
    config = settings.portable()
    light = {"num_cpus": 0.1}
    # Serve's own log lines are JSON too (with its request id), beside PRSM's (prsm/logs.py).
    # Internal hops log no Serve access line per call: PRSM's line per call carries the query's
    # request id, and each line costs CPU on every request. The ingress keeps its access log.
    quiet = {"enable_access_log": False, "encoding": "JSON"}
    lm_scaling = {"autoscaling_config": settings.lm_autoscaling} if settings.lm_autoscaling else {}
    lm = ModelReplica.options(
        name="LMReplica",
        max_ongoing_requests=settings.lm_max_ongoing,
        max_queued_requests=settings.lm_max_queued,
        ray_actor_options={"num_cpus": 0.5},
        logging_config=quiet,
        **lm_scaling,
    ).bind(config)
    tools = ModelReplica.options(
        name="ToolReplica",
        max_ongoing_requests=settings.tool_max_ongoing,
        ray_actor_options=light,
        logging_config=quiet,
    ).bind(config)
    router = RouterDeployment.options(
        name="Router",
        max_ongoing_requests=settings.router_max_ongoing,
        ray_actor_options=light,
        logging_config=quiet,
    ).bind(config)
    overload = BackpressureConfig(status_code=503, retry_after_s=settings.overload_retry_after_s)
    if settings.nwtn_autoscaling:
        nwtn_scaling = {"autoscaling_config": settings.nwtn_autoscaling}
    else:
        nwtn_scaling = {"num_replicas": settings.nwtn_replicas}
    return NWTN.options(
        **nwtn_scaling,
        max_ongoing_requests=settings.nwtn_max_ongoing,
        max_queued_requests=settings.nwtn_max_queued,
        backpressure_config=overload,
        ray_actor_options=light,
        logging_config={"encoding": "JSON"},
    ).bind(config, router, lm, tools)
