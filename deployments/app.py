"""The PRSM Serve application: Ingress (FastAPI) -> NWTN -> Router -> model replicas.

`build_app` is the application builder named in `deployments/prsm.yaml`; `prsm up` and the tests
call it too. Domain logic lives in `prsm/`; these classes only wire it to Ray Serve.
"""

# No `from __future__ import annotations` here: Serve pickles the ingress routes when the class
# is decorated, and FastAPI must see the real body types (not strings) in the replica.
import asyncio
import json
import os
from dataclasses import asdict

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from ray import serve
from ray.serve import Application
from starlette.concurrency import iterate_in_threadpool

from prsm.api import limits
from prsm.api.http import TRACE_RESPONSE, body_schema, create_api, model_entry, parse_body, unwrapped
from prsm.api.schemas import (
    ACCOUNT_PATTERN,
    ChatCompletionRequest,
    ModelCardIn,
    QueryRequest,
    chat_completion,
)
from prsm.backends import ModelCall, ModelOutput, load_backend
from prsm.coalesce import Coalescer
from prsm.db.engine import make_engine, session_factory, upgrade
from prsm.errors import error_dict, error_from_dict
from prsm.nwtn.embed import Embedder
from prsm.nwtn.orchestrator import Orchestrator
from prsm.nwtn.plan import SubTask
from prsm.nwtn.route import Candidate, Router, task_text
from prsm.registry import Registry
from prsm.sessions import SessionStore
from prsm.settings import Settings
from prsm.storage import open_store
from prsm.storage.artifacts import Artifacts
from prsm.weights import prepare_default


def _state(settings: dict) -> tuple[Settings, Registry, SessionStore]:
    s = Settings(**settings)
    sessions = session_factory(make_engine(s.resolved_database_url))
    return s, Registry(sessions), SessionStore(sessions)


@serve.deployment
class ModelReplica:
    """Hosts models by id (`@serve.multiplexed`): the first request for an id loads it."""

    def __init__(self, settings: dict):
        self.settings, self.registry, _ = _state(settings)
        self.threads = os.cpu_count()
        self.store = open_store(self.settings)  # weights by CID are fetched from here

    @serve.multiplexed(max_num_models_per_replica=4)
    async def backend(self, model_id: str):
        card = await asyncio.to_thread(self.registry.get, model_id)
        return await asyncio.to_thread(
            load_backend, card, self.settings.resolved_model_dir, self.threads, self.store
        )

    async def run(self, messages: list[dict], max_new_tokens: int, response_format: dict | None) -> dict:
        backend = await self.backend(serve.get_multiplexed_model_id())
        output = await backend.run(ModelCall(tuple(messages), max_new_tokens, response_format))
        return asdict(output)

    async def run_many(self, calls: list[tuple[list[dict], int, dict | None]]) -> list[dict]:
        """A coalesced batch of calls to one model: each gets its output or its own error."""
        backend = await self.backend(serve.get_multiplexed_model_id())
        outputs = await asyncio.gather(
            *(backend.run(ModelCall(tuple(m), n, f)) for m, n, f in calls), return_exceptions=True
        )
        return [
            {"error": error_dict(o)} if isinstance(o, BaseException) else {"output": asdict(o)}
            for o in outputs
        ]


@serve.deployment
class RouterDeployment:
    def __init__(self, settings: dict):
        _, registry, _ = _state(settings)
        self.router = Router(registry, Embedder())

    async def rank_many(self, requests: list[tuple[dict, list[str]]]) -> list[list[dict]]:
        """Rank a coalesced batch of sub-tasks; their texts share one embedding forward pass."""
        tasks = [SubTask(**{**t, "depends_on": tuple(t["depends_on"])}) for t, _ in requests]
        vectors = await asyncio.to_thread(self.router.embedder.embed_many, [task_text(t) for t in tasks])
        if self.router.stale:  # re-read the registry (at most once a second) off the event loop
            await asyncio.to_thread(self.router.cards)
        return [
            [asdict(c) for c in self.router.rank_with(task, vector, frozenset(open_ids))]
            for task, vector, (_, open_ids) in zip(tasks, vectors, requests, strict=True)
        ]


@serve.deployment
class NWTN:
    def __init__(self, settings: dict, router, lm_replica, tool_replica):
        self.settings, registry, store = _state(settings)
        self.router, self.lm_replica, self.tool_replica = router, lm_replica, tool_replica
        self.orchestrator = Orchestrator(self.settings, registry, store, self._rank, self._call)
        # Concurrent queries share router and tool calls (prsm/coalesce.py): one hop per batch.
        self._ranks = Coalescer(self._rank_batch)
        self._tool_calls: dict[str, Coalescer] = {}

    async def _rank_batch(self, requests: list[tuple[dict, list[str]]]) -> list[list[dict]]:
        return await self.router.rank_many.remote(requests)

    async def _rank(self, task: SubTask, open_circuits: frozenset[str]) -> list[Candidate]:
        ranked = await self._ranks.call((asdict(task), sorted(open_circuits)))
        return [Candidate(**c) for c in ranked]

    async def _call(self, model_id: str, kind: str, call: ModelCall) -> ModelOutput:
        if kind == "transformers":  # long generations: one call each, on the heavy replicas
            handle = self.lm_replica.options(multiplexed_model_id=model_id)
            output = await handle.run.remote(list(call.messages), call.max_new_tokens, call.response_format)
            return ModelOutput(**output)
        # Tools and remote endpoints are light and fast: batched per model.
        if model_id not in self._tool_calls:
            handle = self.tool_replica.options(multiplexed_model_id=model_id)
            self._tool_calls[model_id] = Coalescer(handle.run_many.remote)
        item = (list(call.messages), call.max_new_tokens, call.response_format)
        result = await self._tool_calls[model_id].call(item)
        if "error" in result:
            raise error_from_dict(result["error"])
        return ModelOutput(**result["output"])

    async def query(self, prompt: str, user: str) -> bytes:
        """The trace as JSON bytes: cheaper to ship through Ray and to answer with than a dict."""
        return json.dumps(await self.orchestrator.query(prompt, user)).encode()

    async def complete(
        self, model_id: str, messages: list[dict], max_tokens: int | None, response_format: dict | None,
        user: str,
    ) -> dict:  # fmt: skip
        output, charge = await self.orchestrator.complete(
            model_id, messages, max_tokens, response_format, user
        )
        return asdict(output) | {"charge": charge}


api = create_api()
PARENTS = Query(default=[], description="CIDs it was made from (repeat the parameter).")


@serve.deployment
@serve.ingress(api)
class Ingress:
    def __init__(self, settings: dict, nwtn):
        self.settings, self.registry, self.store = _state(settings)
        self.nwtn = nwtn
        self.ledger = self.store.ledger
        self.artifacts = Artifacts(self.store._sessions, open_store(self.settings))
        limits.configure(self.settings.max_body_bytes)

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.post(
        "/v1/query",
        response_class=Response,
        responses=TRACE_RESPONSE,
        openapi_extra=body_schema(QueryRequest),
    )
    async def query(self, request: Request) -> Response:
        """Answer a (multi-part) question: the answer, the session id and the whole trace."""
        body = await parse_body(request, QueryRequest)
        trace = await unwrapped(self.nwtn.query.remote(body.prompt, body.user))
        return Response(content=trace, media_type="application/json")

    @api.get("/v1/sessions/{session_id}")
    async def session(self, session_id: str) -> dict:
        return await asyncio.to_thread(self.store.trace, session_id)

    @api.get("/v1/accounts/{account_id}")
    async def account(self, account_id: str) -> dict:
        """An FTNS account's balance (decimal string of base units, and in FTNS)."""
        return await asyncio.to_thread(self.ledger.account, account_id)

    @api.get("/v1/accounts/{account_id}/entries")
    async def entries(
        self, account_id: str, limit: int = Query(50, ge=1, le=500), before: int | None = Query(None, ge=1)
    ) -> dict:
        """Ledger entries, newest first; pass `next_before` back as `before` for the next page."""
        data = await asyncio.to_thread(self.ledger.entries, account_id, limit, before)
        return {"data": data, "next_before": data[-1]["id"] if len(data) == limit else None}

    @api.post("/v1/artifacts", status_code=201)
    async def upload_artifact(
        self,
        request: Request,
        kind: str = Query(..., description="model | dataset | trace"),
        creator: str = Query(..., pattern=ACCOUNT_PATTERN, description="The creating account."),
        parents: list[str] = PARENTS,
        licence: str | None = Query(None, max_length=128),
        name: str | None = Query(None, max_length=256),
    ) -> dict:
        """Upload bytes (the raw body, streamed; size-limited) into the content-addressed store
        and record their provenance; answers with the CID and the record."""
        provenance = {"kind": kind, "creator": creator, "parents": parents, "licence": licence, "name": name}
        return await self.artifacts.upload(request.stream(), self.settings.max_artifact_bytes, **provenance)

    @api.get("/v1/artifacts/{cid}")
    async def artifact(self, cid: str) -> dict:
        """An artifact's provenance: kind, size, creator, parent CIDs, licence."""
        return await asyncio.to_thread(self.artifacts.get, cid)

    @api.get("/v1/artifacts/{cid}/content")
    async def artifact_content(self, cid: str) -> StreamingResponse:
        """The bytes, streamed; every block verified against its CID before it is sent."""
        await asyncio.to_thread(self.artifacts.get, cid)  # 400 / 404 before any byte
        chunks = await asyncio.to_thread(self.artifacts.store.get, cid)
        return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")

    @api.get("/v1/models")
    async def models(self) -> dict:
        cards = await asyncio.to_thread(self.registry.list)
        return {"object": "list", "data": [model_entry(c) for c in cards]}

    @api.post("/v1/models", status_code=201)
    async def register(self, body: ModelCardIn) -> dict:
        card = await asyncio.to_thread(self.registry.register, body.to_card())
        return model_entry(card)

    @api.post("/v1/chat/completions")
    async def chat_completions(self, body: ChatCompletionRequest) -> dict:
        """OpenAI-compatible. `model` is a registry id, or `nwtn` for the whole pipeline."""
        messages = [m.model_dump() for m in body.messages]
        if body.model == "nwtn":
            prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            trace = json.loads(await unwrapped(self.nwtn.query.remote(prompt, body.user or "anonymous")))
            tokens_in = sum(t["tokens_in"] for t in trace["tasks"])
            tokens_out = sum(t["tokens_out"] for t in trace["tasks"])
            extra = {"prsm_session_id": trace["session_id"], "prsm_charge": trace["cost"]}
            return chat_completion("nwtn", trace["answer"], tokens_in, tokens_out, extra)
        await asyncio.to_thread(self.registry.get, body.model)  # 404 before any work
        budget = body.max_completion_tokens or body.max_tokens
        user = body.user or "anonymous"
        out = await unwrapped(
            self.nwtn.complete.remote(body.model, messages, budget, body.response_format, user)
        )
        return chat_completion(
            body.model, out["text"], out["tokens_in"], out["tokens_out"], {"prsm_charge": out["charge"]}
        )


def build_app(args: dict | None = None) -> Application:
    """Upgrade the database, register the shipped models, prepare the default weights, bind."""
    settings = Settings(**(args or {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    _, registry, _ = _state(settings.model_dump(mode="json"))
    registry.ensure_defaults()
    prepare_default(settings)  # converts (~30 s) and stores it, once

    config = settings.model_dump(mode="json")
    light = {"num_cpus": 0.1}
    # Internal hops log no access line per call: the session trace in the database already records
    # every step with its latency, and each log line costs CPU on every request. The ingress keeps
    # its HTTP access log.
    quiet = {"enable_access_log": False}
    lm = ModelReplica.options(
        name="LMReplica",
        max_ongoing_requests=settings.lm_max_ongoing,
        ray_actor_options={"num_cpus": 0.5},
        logging_config=quiet,
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
    nwtn = NWTN.options(
        max_ongoing_requests=settings.nwtn_max_ongoing, ray_actor_options=light, logging_config=quiet
    ).bind(config, router, lm, tools)
    return Ingress.options(max_ongoing_requests=settings.ingress_max_ongoing, ray_actor_options=light).bind(
        config, nwtn
    )
