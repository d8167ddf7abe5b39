"""Pydantic models of the public HTTP API (they also make the OpenAPI document)."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from prsm.backends.tools import TOOLS
from prsm.errors import InvalidInput
from prsm.types import ACCOUNT_ID_PATTERN, MODEL_ID_PATTERN, PLAN_SCHEMA_NAME, ModelCard, ModelKind
from prsm.weights import cid_of_reference


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The question, possibly with several parts.")
    user: str = Field(default="anonymous", pattern=ACCOUNT_ID_PATTERN, description="The asking account.")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value


class ModelCardIn(BaseModel):
    """A model owner's registration. Latency and quality are measured by PRSM, not declared."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=MODEL_ID_PATTERN)
    kind: ModelKind
    description: str = Field(min_length=10, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    owner: str = Field(pattern=ACCOUNT_ID_PATTERN)
    licence: str = Field(min_length=1, max_length=128)
    price_per_1k_tokens: int = Field(default=0, ge=0, lt=10**30)
    price_per_call: int = Field(default=0, ge=0, lt=10**30)
    weights: str | None = Field(default=None, max_length=1024, validate_default=True)
    endpoint: str | None = Field(default=None, max_length=1024, validate_default=True)
    remote_model: str | None = Field(default=None, max_length=256)
    teacher: str | None = Field(
        default=None,
        pattern=MODEL_ID_PATTERN,
        description="The registered model this one was distilled from.",
    )

    @field_validator("price_per_1k_tokens", "price_per_call", mode="before")
    @classmethod
    def _integer_base_units(cls, value):
        # Prices are integer FTNS base units: a float would silently lose precision.
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("give an integer number of FTNS base units (10^-18 FTNS)")
        if isinstance(value, str) and not value.isdigit():
            raise ValueError("give an integer number of FTNS base units (10^-18 FTNS)")
        return int(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        cleaned = [t.strip().lower() for t in tags]
        if any(not t or len(t) > 64 for t in cleaned):
            raise ValueError("each tag has 1 to 64 characters")
        return list(dict.fromkeys(cleaned))

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") == ModelKind.TRANSFORMERS and not value:
            raise ValueError("a transformers model needs a weights reference")
        if value:
            try:
                cid_of_reference(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind == ModelKind.OPENAI and not (value or "").startswith(("http://", "https://")):
            raise ValueError("an openai model needs the endpoint's http(s) base URL, e.g. http://host/v1")
        if kind == ModelKind.TOOL and value not in TOOLS:
            raise ValueError(f"a tool model names a built-in tool: {', '.join(TOOLS)}")
        return value

    def to_card(self) -> ModelCard:
        return ModelCard(**self.model_dump())


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; fields PRSM does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    stream: bool = False
    response_format: dict | None = Field(
        default=None, description=f"json_schema named {PLAN_SCHEMA_NAME}: decoded under the plan schema"
    )
    user: str | None = Field(default=None, pattern=ACCOUNT_ID_PATTERN)

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool) -> bool:
        if value:
            raise ValueError("streaming is not supported yet; send stream=false")
        return value


def chat_completion(
    model: str, text: str, tokens_in: int, tokens_out: int, extra: dict | None = None
) -> dict:
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
    }
    if extra:
        body.update(extra)
    return body
