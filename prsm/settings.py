"""One settings object for every PRSM process: `PRSM_*` environment variables and an optional `.env`.

Defaults are the embedded stack: a SQLite file and converted model weights under one data folder,
a local Ray, the Serve app on 127.0.0.1:8000.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prsm.errors import InvalidInput
from prsm.types import Capability

# The router's quality/cost trade-offs by name (prsm/nwtn/route.py): the weight of quality.
ROUTES = {"quality": 1.0, "balanced": 0.5, "cost": 0.0}


def tradeoff(route: str | float, field: str = "route") -> float:
    """The quality weight w of a route: "quality" 1, "balanced" 0.5, "cost" 0, or a number in
    [0, 1] (given as a number or its text)."""
    if isinstance(route, str) and route.strip().lower() in ROUTES:
        return ROUTES[route.strip().lower()]
    try:
        value = float(route)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # NaN too
        raise InvalidInput(f"route is quality, balanced, cost or a number from 0 to 1, not {route!r}", field)
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSM_", env_file=".env", extra="ignore")

    # Absolute by default: `serve run`, `serve deploy` and Ray jobs build the app in worker
    # processes whose working directory is not the caller's.
    data_dir: Path = Field(default=Path("~/.prsm"), description="Holds the SQLite file and models.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: sqlite file prsm.db in data_dir."
    )
    model_dir: Path | None = Field(
        default=None, description="Converted model weights; default: data_dir/models."
    )
    # Ray Train keeps a distillation run's checkpoints here; on a cluster of several hosts it must
    # be storage every host mounts at this path (NFS), so a resumed run finds them wherever it runs.
    distill_dir: Path | None = Field(
        default=None,
        description="Distillation checkpoints (shared storage on a cluster); default: data_dir/distill.",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    # The key the CLI sends to a running app; none: the development key `prsm up` wrote to
    # data_dir/keys.json.
    api_key: SecretStr | None = Field(default=None, description="An API key (prsm_...): never logged.")
    ray_address: str | None = Field(
        default=None, description="Join this Ray cluster instead of starting a local one."
    )
    ray_num_cpus: int | None = None
    # Monitoring (docs/operations.md): the metrics export port of the Ray head `prsm up` starts,
    # and the port of the Prometheus `prsm up --monitor` starts beside it.
    metrics_port: int = Field(default=8080, ge=1, le=65535, description="Ray's Prometheus metrics port.")
    prometheus_port: int = Field(
        default=9090, ge=1, le=65535, description="Port of `prsm up --monitor`'s Prometheus."
    )

    # Limits on input and on plans: the ingress refuses anything past them with a 4xx.
    max_prompt_chars: int = 8_000
    max_body_bytes: int = 256_000
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Time a request body may take to arrive."
    )
    max_plan_tasks: int = 12
    max_plan_depth: int = 4
    max_new_tokens: int = 96

    # The LLM planner runs only when a planner model is configured; the deterministic planner
    # is always the fallback.
    planner_model: str | None = None

    # FTNS pricing (prsm/ftns/pricing.py explains the defaults; these are the only place they are
    # set). Amounts in base units (1e-18 FTNS).
    query_fee: int = Field(default=10**14, ge=0, description="Orchestration fee per query.")
    owner_share_bps: int = 8_000
    operator_share_bps: int = 1_500
    treasury_share_bps: int = 500
    royalty_bps: int = Field(
        default=1_000, description="Of a distilled model's owner share, to its teacher's owner."
    )
    operator_account: str = Field(default="local-operator", description="Ledger account paid for compute.")

    # Chain (prsm/chain/): no URL = the in-process EVM, journaled under data_dir/chain.
    chain_url: str | None = Field(default=None, description="JSON-RPC URL of an Ethereum-compatible node.")
    chain_key: SecretStr | None = Field(default=None, description="Operator key (hex); never logged.")
    chain_keystore: Path | None = Field(default=None, description="Operator key as an encrypted keystore.")
    chain_keystore_password: SecretStr | None = None
    # Federation (prsm/federation/): the node registry every node of the network shares.
    federation_registry: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="Address of the network's node registry (a development chain deploys one if unset).",
    )
    federation_start_block: int = Field(
        default=0, ge=0, description="Block to follow PRSM_FEDERATION_REGISTRY from (its deployment)."
    )
    federation_sync_every_s: float = Field(
        default=60.0, ge=0, description="Seconds between follows of the node registry (0: off)."
    )
    federation_fee_bps: int = Field(
        default=1_000,
        ge=0,
        le=100_000,
        description="This node's fee on a peer's model, in basis points of the peer's price (1000: +10 %).",
    )
    federation_capabilities: list[Capability] = Field(
        default_factory=lambda: list(Capability),
        description="Capabilities whose sub-tasks may go to peer nodes (JSON list; [] turns routing to peers off).",
    )
    federation_credit: int = Field(
        default=10**18,
        ge=0,
        lt=10**30,
        description="FTNS base units a peer node may owe this node before its calls are refused (402).",
    )
    federation_max_skew_s: float = Field(
        default=60.0, gt=0, le=600, description="Age a peer's signed request may have when it arrives."
    )
    ftns_token: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The network's FTNS token, for a node that joins it (unset: this node deploys its own).",
    )
    chain_confirmations: int = Field(
        default=1, ge=1, description="Blocks on top of a transaction (its own included) before it counts."
    )
    settle_max_payees: int = Field(
        default=500,
        ge=1,
        le=800,
        description="Payees per epoch: one transaction must fit a 30M-gas block (~31k gas a new payee).",
    )

    # Content-addressed storage (prsm/storage/): the local block store under data_dir/store,
    # or any IPFS node with the Kubo RPC API.
    ipfs_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:5001/api/v0")
    ipfs_timeout_s: float = Field(default=5.0, gt=0, description="Bound on fetching a block from IPFS.")
    max_artifact_bytes: int = Field(
        default=4 * 1024**3, gt=0, description="Largest POST /v1/artifacts upload."
    )
    storage_quota_bytes: int = Field(
        default=10 * 1024**3,
        ge=0,
        description="Bytes of artifacts one account may create (operators: no quota).",
    )

    # Tool calls run in worker processes with these limits (prsm/backends/sandbox.py); a call
    # past one is stopped and fails alone.
    tool_cpu_s: int = Field(default=5, ge=1, le=600, description="CPU seconds a tool call may use.")
    tool_memory_mb: int = Field(default=1024, ge=256, le=65536, description="Address space of a tool worker.")
    tool_wall_s: float = Field(default=10.0, gt=0, le=600, description="Seconds a tool call may take.")
    tool_workers: int = Field(default=2, ge=1, le=64, description="Tool worker processes a replica keeps.")

    # Marketplace governance (prsm/nwtn/route.py): price bounds on cards, and a bounded share of
    # traffic for new cards until they have a track record.
    max_price_per_call: int = Field(
        default=10**18, ge=0, description="Highest price_per_call a card may ask (base units)."
    )
    max_price_per_1k_tokens: int = Field(
        default=10**18, ge=0, description="Highest price_per_1k_tokens a card may ask."
    )
    new_card_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of sub-tasks on which unproven cards compete on their score.",
    )
    proven_calls: int = Field(default=20, ge=0, description="Calls after which a card counts as proven.")

    # Quality (prsm/quality.py, prsm/nwtn/grade.py) and the router's use of it.
    route: str = Field(
        default="balanced",
        description="Quality/cost trade-off of routing: quality, balanced, cost, or a number 0..1 "
        "(the weight of quality); a query may override it.",
    )
    # The sub-task cache (prsm/nwtn/cache.py): transformers models' answers, given again.
    cache_ttl_s: float = Field(
        default=7 * 86400, ge=0, description="How long a cached sub-task answer is given again (0: no cache)."
    )
    cache_scope: Literal["account", "global"] = Field(
        default="account",
        description="account: answers are given again only to the account that paid for them; global: to anyone.",
    )
    cache_price_bps: int = Field(
        default=2_000,
        ge=0,
        le=10_000,
        description="What a cache hit costs, in basis points of the model's price.",
    )
    grade_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of language-model sub-tasks graded in shadow against a reference model "
        "(the operator's account pays the reference's call); 0 turns it off.",
    )
    data_sharing_default: bool = Field(
        default=True,
        description="Whether an account that has not chosen lets its sessions feed the learning loop's data sets.",
    )
    canary_target: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Share of the canary's baseline (its incumbent's own agreement across the cluster) that a "
        "canary student's mean shadow grade must hold (prsm/canary.py).",
    )
    canary_steps: list[float] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5],
        description="The shares of its cluster a canary student takes, step by step, before promotion.",
    )
    canary_step_grades: int = Field(
        default=10, ge=2, description="New shadow grades a canary needs in a step before it may step up."
    )
    canary_every_s: float = Field(
        default=10.0, ge=0, description="Seconds between the canaries' decisions (0: off)."
    )
    grade_reference: str | None = Field(
        default=None,
        description="The reference model id (a stronger registered model, or a remote endpoint's "
        "card); default: each student's teacher.",
    )

    # Remote endpoints (prsm/egress.py): public https only, unless the operator allows a
    # destination here (a local vLLM, llama.cpp); each call bounded in time and size.
    egress_allow: list[str] = Field(
        default_factory=list,
        description="Destinations remote cards may reach though private or plain http: JSON list of "
        'networks, addresses or hosts, each with an optional :port (["127.0.0.1:8001", "10.0.0.0/8"]).',
    )
    remote_deadline_s: float = Field(
        default=60.0, gt=0, le=600, description="Seconds a remote call may take in all."
    )
    remote_max_response_bytes: int = Field(
        default=4 * 1024**2,
        ge=1024,
        le=256 * 1024**2,
        description="Largest answer read from a remote endpoint.",
    )
    # Seals remote cards' credentials in the database (prsm/sealing.py). Every process that calls
    # remote endpoints needs the same key: set it on a cluster.
    secret_key: SecretStr | None = Field(
        default=None, description="64 hex digits; default: data_dir/secret.key, made (0600) on first use."
    )

    # Deadlines: every model call of a query ends within the query's deadline; a hold still open
    # after `abandoned_after_s` (its NWTN process died) is released by a sweep NWTN runs every
    # `sweep_every_s`.
    query_deadline_s: float = Field(
        default=300.0, gt=0, le=3600, description="Seconds a query's model calls may take in all."
    )
    abandoned_after_s: float = Field(
        default=900.0,
        gt=0,
        description="Age after which a running session's hold is released (> query deadline).",
    )
    sweep_every_s: float = Field(default=60.0, gt=0, description="How often NWTN releases abandoned holds.")
    # Scheduled operations (prsm/ops.py): run inside the cluster by one NWTN replica at a time;
    # 0 turns one off. `prsm ops status` shows their last runs.
    settle_every_s: float = Field(
        default=3600.0, ge=0, description="How often a settlement epoch runs (0: only `prsm ftns settle`)."
    )
    gc_every_s: float = Field(
        default=86400.0, ge=0, description="How often the local store is collected (0: off)."
    )
    gc_grace_s: float = Field(
        default=3600.0, ge=0, description="Unpinned blocks younger than this survive a scheduled gc."
    )

    # Operations (docs/operations.md): PRSM's JSON log lines (prsm/logs.py) and its metrics.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of PRSM's JSON log lines (INFO: one line per query and per hop)."
    )

    # Serve sizing. Serve's default max_ongoing_requests=5 collapses under load on small
    # machines (docs/platform.md): the light deployments take many concurrent requests because
    # they mostly wait on I/O or on other deployments.
    nwtn_max_ongoing: int = 256
    nwtn_replicas: int = Field(default=1, ge=1, le=64, description="Ingress (NWTN) replicas.")
    # Overload is answered, never queued for ever: past this many requests waiting for the
    # ingress, Serve answers 503 with Retry-After.
    nwtn_max_queued: int = Field(default=512, ge=1, description="Requests queued at the ingress before 503.")
    overload_retry_after_s: int = Field(default=5, ge=1, description="Retry-After of an overload 503.")
    router_max_ongoing: int = 256
    lm_max_ongoing: int = 16
    # Autoscaling (Serve's autoscaling_config: min_replicas, max_replicas, target_ongoing_requests,
    # upscale_delay_s, downscale_delay_s, ...) of the language-model replicas and of NWTN; None:
    # a fixed number (1 LM replica, `nwtn_replicas` ingress replicas), the embedded default.
    # deployments/prsm.yaml sets both for a cluster, chosen from benchmarks/autoscale.py.
    lm_autoscaling: dict | None = Field(default=None, description="Serve autoscaling_config of LMReplica.")
    nwtn_autoscaling: dict | None = Field(default=None, description="Serve autoscaling_config of NWTN.")
    # Language-model calls waiting for a replica, past which a call is refused at once (the
    # query answers 503 with Retry-After) instead of queueing longer than its answer is worth:
    # with 16 calls batched per replica, 32 waiting is about two answers' time (benchmarks/load.py).
    lm_max_queued: int = Field(default=32, ge=1, description="LM calls queued per deployment before 503.")
    tool_max_ongoing: int = 256

    @field_validator("data_dir", "model_dir", "distill_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Ray workers start in other folders: every process must see the same absolute paths.
        return None if value is None else value.expanduser().resolve()

    @property
    def resolved_model_dir(self) -> Path:
        return (self.model_dir or self.data_dir / "models").resolve()

    @property
    def resolved_distill_dir(self) -> Path:
        return (self.distill_dir or self.data_dir / "distill").resolve()

    @property
    def resolved_store_dir(self) -> Path:
        return (self.data_dir / "store").resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'prsm.db').resolve()}"

    @model_validator(mode="after")
    def _sweep_after_deadline(self) -> Settings:
        if self.abandoned_after_s <= self.query_deadline_s:
            raise ValueError(
                "abandoned_after_s must be longer than query_deadline_s: a running query is not abandoned"
            )
        return self

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        try:
            tradeoff(value)
        except Exception as exc:  # InvalidInput: a setting's error is a ValueError here
            raise ValueError(str(exc)) from None
        return value

    @property
    def route_tradeoff(self) -> float:
        return tradeoff(self.route)

    @field_validator("canary_steps")
    @classmethod
    def _canary_steps(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s < 1 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(
                "canary_steps is a rising JSON list of shares between 0 and 1, e.g. [0.05, 0.25, 0.5]"
            )
        return steps

    @field_validator("egress_allow")
    @classmethod
    def _egress_entries(cls, entries: list[str]) -> list[str]:
        from prsm.egress import Rule  # the one parser of an entry

        for entry in entries:
            Rule.parse(entry)
        return entries

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    def portable(self) -> dict:
        """The settings as JSON for another process (a Serve replica), secrets left out: each
        process reads its secrets from its own environment or files, never from a copied dict
        (SecretStr would serialise as asterisks)."""
        secret = {
            name for name, field in type(self).model_fields.items() if "SecretStr" in str(field.annotation)
        }
        return self.model_dump(mode="json", exclude=secret)

    @property
    def keys_file(self) -> Path:
        """The keys `prsm up` makes for the local operator and for development (mode 0600)."""
        return self.data_dir / "keys.json"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


# Environment every Ray process of PRSM starts with (CLI, tests, benchmarks set it before Ray).
RAY_ENV = {
    # An in-process ray.init() turns token auth on, after which `ray start`/`ray stop` fail
    # unless every process agrees. The embedded stack listens on loopback only: auth is off,
    # explicitly, everywhere.
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Serve's throughput mode (Ray >= 2.56): user code and routers on the replica's own event
    # loop, gRPC between replicas, buffered request logs. NWTN makes three handle calls per
    # sub-task, so this matters (benchmarks/serve_overhead.py). Direct ingress stays off: the
    # HTTP proxy keeps route prefixes for several apps on one port.
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
    # Serve's HTTP proxy calls this as it starts: PRSM's deadline on reading request headers
    # (prsm/api/proxy.py; PRSM_HEADER_TIMEOUT_S).
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "prsm.api.proxy:guard_headers",
}


def apply_ray_env() -> dict[str, str]:
    """Put RAY_ENV into this process's environment (values already set win) and return it."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    return dict(os.environ)
