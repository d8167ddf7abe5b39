"""The FastAPI side of the ingress: error mapping (one place for status codes) and helpers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from prsm.api import limits
from prsm.errors import PRSMError, unwrap
from prsm.registry import ModelCard


def create_api() -> FastAPI:
    api = FastAPI(
        title="PRSM",
        version="0.1.0",
        description="Ask multi-part questions; NWTN plans, routes each part to the best model, "
        "and answers with a full reasoning trace.",
    )
    api.add_middleware(limits.BodyLimits)
    api.add_exception_handler(PRSMError, prsm_error)
    api.add_exception_handler(RequestValidationError, validation_error)
    return api


async def prsm_error(_request: Request, exc: Exception) -> JSONResponse:
    error = unwrap(exc)
    assert isinstance(error, PRSMError)
    return JSONResponse({"error": error.to_dict()}, status_code=error.status_code)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", first.get("msg"))
        body = {"type": "InvalidRequest", "field": "body", "message": f"malformed JSON: {detail}"}
        return JSONResponse({"error": body}, status_code=400)

    def field(e: dict) -> str:
        return ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"

    body = {
        "type": "InvalidInput",
        "field": field(first),
        "message": str(first.get("msg", "invalid")).removeprefix("Value error, "),
        "errors": [{"field": field(e), "message": e.get("msg")} for e in errors],
    }
    return JSONResponse({"error": body}, status_code=422)


async def unwrapped(response):
    """Await a deployment call; re-raise a PRSM error from another replica as itself."""
    try:
        return await response
    except Exception as exc:
        cause = unwrap(exc)
        if isinstance(cause, PRSMError):
            raise cause from None
        raise


def model_entry(card: ModelCard) -> dict:
    return {"object": "model", "owned_by": card.owner, **card.public()}
