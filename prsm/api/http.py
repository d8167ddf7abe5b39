"""The FastAPI side of the ingress: error mapping (one place for status codes) and helpers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from prsm import quality
from prsm.api import auth, limits
from prsm.errors import RETRY_AFTER_S, PRSMError, unwrap
from prsm.types import ModelCard

TRACE_RESPONSE = {
    200: {
        "description": "The answer and its trace: session_id, status, answer, tasks (each with the "
        "model that did it, latency, tokens and the router's ranking), steps, sources, safety_flags.",
        "content": {"application/json": {}},
    }
}


async def parse_body(request: Request, model: type[BaseModel]):
    """Validate a JSON body straight from bytes with pydantic-core: on the hot path this skips
    FastAPI's generic body handling (decode, then validate) and costs a fraction of it."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise BodyInvalid(exc.errors(include_url=False)) from None


class BodyInvalid(Exception):
    def __init__(self, errors: list):
        super().__init__("invalid body")
        self.errors = errors


async def body_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyInvalid)
    return validation_response(exc.errors)


def body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI for a route that parses its body with `parse_body`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }


def create_api() -> FastAPI:
    api = FastAPI(
        title="PRSM",
        version="0.1.0",
        description="Ask multi-part questions; NWTN plans, routes each part to the best model, "
        "and answers with a full reasoning trace.",
    )
    api.add_middleware(limits.BodyLimits)
    api.add_middleware(auth.Authenticate)  # added last: the outermost, so the first to run
    api.add_exception_handler(PRSMError, prsm_error)
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(BodyInvalid, body_invalid)
    return api


def error_body(error: dict, code: str | None = None) -> dict:
    """PRSM's error fields (type, field, message, figures) plus OpenAI's `param` and `code`, so
    that OpenAI clients read our errors as theirs."""
    return {"error": error | {"param": error.get("field"), "code": code}}


async def prsm_error(_request: Request, exc: Exception) -> JSONResponse:
    error = unwrap(exc)
    assert isinstance(error, PRSMError)
    headers = {"www-authenticate": "Bearer"} if error.status_code == 401 else None
    if error.status_code == 503:  # overload, or a cluster too small for now: when to try again
        headers = {"retry-after": str(int(getattr(error, "retry_after_s", 0) or RETRY_AFTER_S))}
    return JSONResponse(
        error_body(error.to_dict(), error.code), status_code=error.status_code, headers=headers
    )


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(list(exc.errors()))


def validation_response(errors: list) -> JSONResponse:
    """400 for a body that is not JSON, else 422 naming the first offending field."""
    first = errors[0]

    def field(e: dict) -> str:  # the field's own name: `kind`, not `query.kind`
        loc = list(e.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        return ".".join(str(p) for p in loc) or "body"

    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", first.get("msg"))
        body = {"type": "InvalidRequest", "field": "body", "message": f"malformed JSON: {detail}"}
        return JSONResponse(error_body(body), status_code=400)

    body = {
        "type": "InvalidInput",
        "field": field(first),
        "message": str(first.get("msg", "invalid")).removeprefix("Value error, "),
        "errors": [{"field": field(e), "message": e.get("msg")} for e in errors],
    }
    return JSONResponse(error_body(body), status_code=422)


def trace_usage(trace: dict) -> tuple[int, int]:
    """A query's tokens and charge, for the key's limits."""
    tokens = sum(t["tokens_in"] + t["tokens_out"] for t in trace["tasks"])
    return tokens, int(trace["cost"]["charged"] or 0)


def model_entry(card: ModelCard, measured: dict | None = None) -> dict:
    """A card as the API shows it, with its measured quality by capability (prsm/quality.py):
    each capability's estimate, its uncertainty and the number of grades behind it."""
    return {"object": "model", "owned_by": card.owner, **card.public(),
            "measured_quality": quality.by_capability(measured or {})}  # fmt: skip
