"""Pydantic models of the public HTTP API (they also make the OpenAPI document)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from prsm.backends.tools import TOOLS
from prsm.egress import parse_endpoint
from prsm.errors import InvalidInput, PRSMError
from prsm.settings import tradeoff
from prsm.types import (
    ACCOUNT_ID_PATTERN,
    MODEL_ID_PATTERN,
    PEER_MODEL_PREFIX,
    PLAN_SCHEMA_NAME,
    KeyLimits,
    KeyRole,
    ModelCard,
    ModelKind,
)
from prsm.weights import cid_of_reference


class DataSharingRequest(BaseModel):
    """Whether the account's sessions may feed the learning loop's data sets (prsm/consent.py)."""

    model_config = ConfigDict(extra="forbid")

    allowed: bool = Field(strict=True, description="true: they may; false: they never will.")


class FeedbackRequest(BaseModel):
    """A rating of a session's answer, or of one of its sub-tasks (`task`: its key in the trace)."""

    model_config = ConfigDict(extra="forbid")

    score: float = Field(
        ge=0, le=1, allow_inf_nan=False, description="0: wrong or useless .. 1: right and useful."
    )
    comment: str | None = Field(default=None, max_length=2000, description="What was wrong or right.")
    task: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="A sub-task's key; none: the whole answer.",
    )

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


def _route(value: object) -> object:
    """A query's quality/cost trade-off (prsm/nwtn/route.py): checked whole, so an error names
    `route` itself, never a member of a union."""
    if value is None:
        return None
    refused = ValueError(f"route is quality, balanced, cost or a number from 0 to 1, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise refused
    try:
        tradeoff(value)
    except PRSMError:
        raise refused from None
    return value


Route = Annotated[str | float, BeforeValidator(_route)]


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The question, possibly with several parts.")
    user: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="Your own tag for your end user (OpenAI's `user`): recorded with the session, "
        "never the payer. The API key's account pays.",
    )
    route: Route | None = Field(
        default=None,
        description="The quality/cost trade-off of routing this query's sub-tasks: quality, balanced, "
        "cost, or the weight of quality from 0 to 1. Default: the operator's (PRSM_ROUTE).",
    )

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
    kind: Literal["transformers", "tool", "openai"] = Field(
        description="A peer node's models are not registered: they come from its catalogue."
    )
    description: str = Field(min_length=10, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    owner: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="The account paid for the model's use: the registering key's (an operator's key may name another).",
    )
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
    credential: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="An openai card's secret for its endpoint (sent as a bearer token to that "
        "endpoint only); stored sealed, never shown.",
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

    @field_validator("id")
    @classmethod
    def _not_a_peers(cls, value: str) -> str:
        if value.startswith(PEER_MODEL_PREFIX):
            raise ValueError(
                f"ids starting {PEER_MODEL_PREFIX!r} name peer nodes' models, which come from their catalogues"
            )
        return value

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
        if kind == ModelKind.OPENAI:
            if not value:
                raise ValueError("an openai model needs the endpoint's https base URL, e.g. https://host/v1")
            try:
                parse_endpoint(value)  # the form; where it leads is the egress policy's (the route's)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        elif kind == ModelKind.TOOL and value not in TOOLS:
            raise ValueError(f"a tool model names a built-in tool: {', '.join(TOOLS)}")
        elif kind == ModelKind.TRANSFORMERS and value:
            raise ValueError("a transformers model has weights, not an endpoint")
        return value

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            if info.data.get("kind") != ModelKind.OPENAI:
                raise ValueError("only an openai model has a credential (for its endpoint)")
            if not value.get_secret_value().isprintable() or not value.get_secret_value().isascii():
                raise ValueError("the credential must be printable ASCII (it is sent in a header)")
        return value

    def to_card(self, owner: str) -> ModelCard:
        return ModelCard(**self.model_dump(exclude={"owner", "credential"}), owner=owner)

    @classmethod
    def changed(cls, card: ModelCard, changes: dict) -> ModelCardIn:
        """`card`'s declaration with `changes` made, validated as a registration is."""
        fields = set(cls.model_fields) - {"tags", "credential"}
        declared = {f: getattr(card, f) for f in fields} | {"tags": list(card.tags)}
        try:
            return cls.model_validate(declared | changes)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidInput(str(first["msg"]).removeprefix("Value error, "), field) from None


class ModelCardChange(BaseModel):
    """What an owner may change on a registered card; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    tags: list[str] | None = None
    licence: str | None = None
    price_per_1k_tokens: int | str | None = None
    price_per_call: int | str | None = None
    weights: str | None = None
    endpoint: str | None = None
    remote_model: str | None = None
    credential: SecretStr | None = Field(
        default=None,
        max_length=4096,
        description="A new secret for the endpoint; empty removes it. Changing the endpoint without "
        "giving one removes the old one (a secret goes only to the endpoint it was given for).",
    )

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not (
            value.get_secret_value().isprintable() and value.get_secret_value().isascii()
        ):
            raise ValueError("the credential must be printable ASCII (it is sent in a header)")
        return value


class KeyRequest(BaseModel):
    """A new API key for the asking key's account (an operator's may name another)."""

    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(default=None, pattern=ACCOUNT_ID_PATTERN)
    role: KeyRole = Field(default=KeyRole.USER, description="At most the asking key's own role.")
    name: str | None = Field(default=None, max_length=128)
    expires_at: datetime | None = Field(default=None, description="ISO 8601; none: no expiry.")
    rpm: int | None = Field(default=None, ge=0, le=10**7, description="Requests per minute; none: no limit.")
    tpm: int | None = Field(default=None, ge=0, le=10**12, description="Tokens per minute; none: no limit.")
    concurrent: int | None = Field(
        default=None, ge=0, le=10**6, description="Queries and chat completions at once."
    )
    budget: int | None = Field(
        default=None,
        ge=0,
        lt=10**30,
        description="FTNS base units the key may spend per period; none: no limit.",
    )
    budget_period_s: int = Field(
        default=30 * 86400, ge=60, le=366 * 86400, description="The budget's period."
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _integer_base_units(cls, value):
        if value is None:
            return value
        if (
            isinstance(value, bool)
            or not isinstance(value, int | str)
            or isinstance(value, str)
            and not value.isdigit()
        ):
            raise ValueError("give an integer number of FTNS base units (10^-18 FTNS)")
        return int(value)

    @property
    def limits(self) -> KeyLimits:
        return KeyLimits(self.rpm, self.tpm, self.concurrent, self.budget, self.budget_period_s)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2027-01-01T00:00:00Z")
        return value


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float = Field(
        default=3600, ge=0, le=30 * 86400, description="How long the old key keeps working."
    )


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] = Field(
        description="Text, or OpenAI's content parts of type text (read joined by newlines); an "
        "assistant message's content may be null (read as empty). PRSM's models read text only."
    )

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, value, info: ValidationInfo):
        if value is None and info.data.get("role") == "assistant":
            return ""  # an assistant turn that only called tools
        if isinstance(value, list):
            if len(value) > 256:
                raise ValueError("at most 256 content parts")
            for part in value:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind != "text":
                    raise ValueError(
                        f"PRSM's models read text only: a content part of type {kind!r} cannot be sent"
                    )
        return value

    @field_validator("content")
    @classmethod
    def _joined(cls, value: str | list[TextPart]) -> str:
        return value if isinstance(value, str) else "\n".join(part.text for part in value)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's other options: accepted, no effect

    include_usage: bool = Field(default=False, description="A last chunk with the usage, choices empty.")


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; fields PRSM does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    stream: bool = Field(
        default=False, description="Server-sent events, chat.completion.chunk objects (prsm/api/streaming.py)"
    )
    stream_options: StreamOptions | None = None
    response_format: dict | None = Field(
        default=None,
        description=f"text; PRSM's own language models also decode under the json_schema named "
        f"{PLAN_SCHEMA_NAME} (the plan schema); a remote model gets it as sent",
    )
    # OpenAI's sampling fields are checked against OpenAI's ranges and not applied: every call
    # decodes greedily (the same answer for the same call, which prices, the sub-task cache and
    # the graders rely on; a remote model is called with temperature 0). More
    # than one choice is refused, not silently ignored.
    n: int | None = Field(default=None, ge=1, le=1, description="PRSM answers one choice per request")
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    user: str | None = Field(default=None, pattern=ACCOUNT_ID_PATTERN)
    route: Route | None = Field(
        default=None, description="model nwtn: the routing trade-off, as in POST /v1/query (extra_body)"
    )
    # Tools and log-probabilities: PRSM's models answer in text and report no log-probabilities.
    # `tools` with tool_choice auto (the default) or none is answered in text, as OpenAI's models
    # may answer; a call that demands a tool call, or log-probabilities, is refused by name
    # rather than answered without what it asked for.
    tool_choice: str | dict | None = Field(
        default=None, description="auto or none: answered in text; a required tool call is refused"
    )
    logprobs: bool | None = Field(
        default=None, description="PRSM reports no log-probabilities: true is refused"
    )
    top_logprobs: int | None = Field(
        default=None, ge=0, le=0, description="PRSM reports no log-probabilities"
    )

    @field_validator("tool_choice")
    @classmethod
    def _text_answers(cls, value: str | dict | None) -> str | dict | None:
        if value is not None and value not in ("auto", "none"):
            raise ValueError("PRSM's models answer in text and call no tools: tool_choice auto or none")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("PRSM's models report no log-probabilities: leave logprobs out or false")
        return value

    stop: str | list[str] | None = Field(
        default=None,
        description="Up to 4 sequences (1 to 256 characters each): the answer ends before the first "
        "of them and finish_reason is stop. Streamed from one model, the generation stops there "
        "and is charged for what ran; unstreamed, the answer is cut (the model ran to its end).",
    )

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> tuple[str, ...] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is None or not stops:
            return None
        if len(stops) > 4 or not all(1 <= len(s) <= 256 for s in stops):
            raise ValueError("up to 4 stop sequences of 1 to 256 characters each")
        return tuple(stops)


class FederationCall(BaseModel):
    """A peer node's call of one of this node's models (POST /v1/federation/call), signed by the
    peer's chain key (prsm/chain/signing.py): the sub-task's messages and the prices it agreed to."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_ID_PATTERN)
    messages: list[ChatMessage] = Field(min_length=1, max_length=16)
    max_tokens: int = Field(ge=1, le=4096)
    price_per_call: str = Field(pattern=r"^[0-9]{1,30}$", description="FTNS base units the caller agreed to")
    price_per_1k_tokens: str = Field(pattern=r"^[0-9]{1,30}$")
    response_format: dict | None = None


def chat_completion(
    model: str,
    text: str,
    tokens_in: int,
    tokens_out: int,
    extra: dict | None = None,
    finish_reason: str = "stop",
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
                "finish_reason": finish_reason,
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
