"""Value types every layer shares: sub-tasks and plans, model calls and outputs, model cards,
router candidates, and the kinds and statuses they carry, as enums.

A leaf module: it imports nothing of PRSM, so storage, ftns, chain, backends and nwtn can all
use it without importing each other. These values also cross Ray's process boundary as they
are (frozen dataclasses and enums pickle by reference to this module).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum

# One name, one pattern: an account id (API `user`, card `owner`, ledger account) and a model id.
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
MODEL_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,127}$"
# Ids of peer nodes' models on this node (prsm/federation/market.py): never registered by hand.
PEER_MODEL_PREFIX = "peer-"

# A sub-task uses an earlier sub-task's result by writing `{t1}` in its instruction.
PLACEHOLDER = re.compile(r"\{(t\d+)\}")

# The name of the plan's JSON schema in an OpenAI-style response_format: local models decode
# under it exactly (prsm/backends/guided.py); remote endpoints get it as their response_format.
PLAN_SCHEMA_NAME = "prsm_task_plan"


class Capability(StrEnum):
    """What a sub-task needs: exact symbolic math, unit conversion, a physics or chemistry formula,
    or a general language model."""

    MATH = "math"
    UNITS = "units"
    FORMULA = "formula"  # a standard formula of physics or chemistry, evaluated
    GENERAL = "general"


# Sub-tasks whose answer is a computed number: only a card that claims the capability takes them,
# never a general language model as a fallback (it would make a number up).
EXACT_CAPABILITIES = frozenset({Capability.MATH, Capability.UNITS, Capability.FORMULA})


class ModelKind(StrEnum):
    TRANSFORMERS = "transformers"  # a causal LM whose weights a model replica loads
    TOOL = "tool"  # an exact specialist built into PRSM (prsm/backends/tools.py)
    OPENAI = "openai"  # an OpenAI-compatible endpoint somewhere else
    PEER = "peer"  # a model of another PRSM node, called with this node's chain key (prsm/federation/)


class TaskStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # a sub-task it depends on failed


class SessionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every sub-task answered
    PARTIAL = "partial"  # some answered
    FAILED = "failed"
    BLOCKED = "blocked"  # refused by the safety screen


class StepRole(StrEnum):
    """Who wrote a reasoning step of the trace."""

    SAFETY = "safety"
    PLANNER = "planner"
    ROUTER = "router"
    MODEL = "model"
    COMPILER = "compiler"
    GRADER = "grader"  # a shadow grade of a sub-task's answer, after the answer (prsm/nwtn/grade.py)


class KeyRole(StrEnum):
    """What an API key may do, each role all that the one before may: a user asks, pays from its
    own account and reads its own objects; an owner also registers and manages its own model
    cards; an operator may do anything, for any account."""

    USER = "user"
    OWNER = "owner"
    OPERATOR = "operator"

    def at_least(self, role: KeyRole) -> bool:
        order = list(KeyRole)
        return order.index(self) >= order.index(role)


@dataclass(frozen=True)
class KeyLimits:
    """What one API key may use (None: no limit). Requests and tokens per rolling minute,
    queries and chat completions at once, FTNS (base units) per budget period."""

    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget: int | None = None
    budget_period_s: int = 30 * 86400

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.concurrent, self.budget))

    def public(self) -> dict:
        return {"rpm": self.rpm, "tpm": self.tpm, "concurrent": self.concurrent,
                "budget": None if self.budget is None else str(self.budget), "budget_period_s": self.budget_period_s}  # fmt: skip


NO_LIMITS = KeyLimits()


@dataclass(frozen=True)
class Principal:
    """Who is asking, as its API key says: never what a request body claims."""

    key_id: str
    account: str
    role: KeyRole
    limits: KeyLimits = NO_LIMITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", KeyRole(self.role))

    @property
    def operator(self) -> bool:
        return self.role == KeyRole.OPERATOR

    def may_act_for(self, account: str) -> bool:
        return self.operator or account == self.account


@dataclass(frozen=True)
class SubTask:
    key: str
    instruction: str
    capability: Capability
    depends_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "capability", Capability(self.capability))
        object.__setattr__(self, "depends_on", tuple(self.depends_on))

    @property
    def text(self) -> str:
        """What the router embeds for this sub-task."""
        return f"{self.capability}: {self.instruction}"


@dataclass(frozen=True)
class TaskPlan:
    """A DAG of sub-tasks; a valid plan lists every dependency before its dependants
    (prsm/nwtn/plan.py validates it)."""

    tasks: tuple[SubTask, ...]
    planner: str

    def get(self, key: str) -> SubTask:
        return next(t for t in self.tasks if t.key == key)

    def depth(self) -> int:
        levels: dict[str, int] = {}
        for task in self.tasks:
            levels[task.key] = 1 + max((levels.get(d, 0) for d in task.depends_on), default=0)
        return max(levels.values(), default=0)

    def ready(self, finished: set[str], started: set[str]) -> list[SubTask]:
        return [t for t in self.tasks if t.key not in started and all(d in finished for d in t.depends_on)]


@dataclass(frozen=True)
class ModelCall:
    """One request to one model: OpenAI-style chat messages and a generation budget."""

    messages: tuple[dict, ...]
    max_new_tokens: int = 96
    # OpenAI's response_format: {"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}
    response_format: dict | None = None
    # The query's request id, for the replica's log line (prsm/logs.py); not part of the call.
    request_id: str = field(default="", compare=False)

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""


@dataclass(frozen=True)
class ModelOutput:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    # What a peer node charged this node for the call (base units); None for a local model.
    charged: int | None = None
    # OpenAI's finish_reason: "length" when the answer was cut at its budget of new tokens.
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ModelCard:
    """A marketplace entry. Declared by its owner: capabilities (tags), price, weights or
    endpoint, licence. Measured by PRSM: latency, quality, calls and failures."""

    id: str
    kind: ModelKind
    description: str
    owner: str
    licence: str
    tags: tuple[str, ...] = ()
    price_per_1k_tokens: int = 0  # FTNS base units (10^-18 FTNS)
    price_per_call: int = 0
    weights: str | None = None
    endpoint: str | None = None
    remote_model: str | None = None
    teacher: str | None = None  # the model this one was distilled from: its owner earns a royalty
    latency_ms: float | None = None
    quality: float | None = None
    evaluation: dict | None = field(default=None, compare=False)
    calls: int = 0
    failures: int = 0
    disabled: bool = False  # by an operator: no traffic, not quoted
    has_credential: bool = False  # a remote card's sealed secret for its endpoint (never shown)
    embedding_key: str | None = field(default=None, compare=False)
    # A peer node's model (kind PEER): {"operator", "kind", "price_per_call", "price_per_1k_tokens"}
    # as the peer asks them, decimal strings (prsm/federation/market.py).
    peer: dict | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ModelKind(self.kind))
        object.__setattr__(self, "tags", tuple(str(t) for t in self.tags))

    @property
    def tool_like(self) -> bool:
        """An exact tool: one of PRSM's, or a peer node's tool (never given a sub-task outside
        its tags, like a local one)."""
        return self.kind == ModelKind.TOOL or (self.peer or {}).get("kind") == ModelKind.TOOL

    @property
    def capability_text(self) -> str:
        """What the router embeds: the owner's description plus the tags."""
        return f"{self.description} Tags: {', '.join(self.tags)}."

    def public(self) -> dict:
        """The card as the API shows it. Amounts are decimal strings of base units: JSON numbers
        lose precision past 2^53 in many clients."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["tags"] = list(self.tags)
        data["price_per_1k_tokens"] = str(self.price_per_1k_tokens)
        data["price_per_call"] = str(self.price_per_call)
        data.pop("embedding_key")
        return data


@dataclass(frozen=True)
class Candidate:
    """A model the router ranked for a sub-task, with the parts of its score."""

    model_id: str
    kind: ModelKind
    score: float
    tag: float
    similarity: float
    price: float
    latency: float
    health: float
    estimated_cost: int
    proven: bool = True  # has a track record (or a trusted owner): see prsm/nwtn/route.py
    # Measured quality for the sub-task's capability (prsm/quality.py), and the term the score
    # used: the estimate plus the exploration bonus.
    quality: float = 0.5
    quality_std: float = 0.2887
    quality_n: int = 0
    quality_term: float = 0.5
    cluster: str = ""  # the sub-task's cluster of similar sub-tasks (prsm/clusters.py); "" : none
    canary: str = ""  # a canary student on this cluster: the incumbent it is graded against (prsm/canary.py)

    def to_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "kind": str(self.kind),
            "score": round(self.score, 4),
            "tag": self.tag,
            "similarity": round(self.similarity, 4),
            "price": round(self.price, 4),
            "latency": round(self.latency, 4),
            "health": round(self.health, 4),
            "estimated_cost": self.estimated_cost,
            "proven": self.proven,
            "quality": round(self.quality, 4),
            "quality_std": round(self.quality_std, 4),
            "quality_n": self.quality_n,
            "quality_term": round(self.quality_term, 4),
            "cluster": self.cluster,
            "canary": self.canary or None,
        }
