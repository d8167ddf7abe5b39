"""SQLAlchemy models: query sessions and their plan, reasoning steps, safety flags, the model registry.

The same models serve SQLite (embedded default) and PostgreSQL; Alembic migrations in
`migrations/` create them, and a test checks that autogenerate finds no drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false


class TokenAmount(TypeDecorator):
    """An exact integer amount of FTNS base units (18 decimals can exceed 64 bits).

    NUMERIC(78, 0) holds any uint256 on PostgreSQL. SQLite has no exact decimal type (its NUMERIC
    affinity turns big values into floats), so there the amount is stored as decimal text.
    """

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(78, 0))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"token amounts are int base units, got {type(value).__name__}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else int(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC whether the driver returns aware (PostgreSQL) or naive (SQLite) datetimes."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def iso_utc(value: datetime | None) -> str | None:
    """UTC ISO 8601 whether the driver returns aware (PostgreSQL) or naive (SQLite) datetimes."""
    return None if value is None else as_utc(value).isoformat()


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ModelCardRow(Base):
    __tablename__ = "model_cards"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # transformers | tool | openai
    description: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    owner: Mapped[str] = mapped_column(String(128))
    price_per_1k_tokens: Mapped[int] = mapped_column(TokenAmount, default=0)
    price_per_call: Mapped[int] = mapped_column(TokenAmount, default=0)
    weights: Mapped[str | None] = mapped_column(String(1024))
    endpoint: Mapped[str | None] = mapped_column(String(1024))
    remote_model: Mapped[str | None] = mapped_column(String(256))
    # The owner's secret for the endpoint, sealed (prsm/sealing.py): never shown, never logged.
    credential: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Provenance: the model this one was distilled from; its owner earns a royalty on every call.
    teacher: Mapped[str | None] = mapped_column(String(128))
    licence: Mapped[str] = mapped_column(String(128))
    # Measured by the system, never declared by the owner.
    latency_ms: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    evaluation: Mapped[dict | None] = mapped_column(JSON)  # what a distillation job measured
    calls: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # An operator's decision: a disabled card gets no traffic and is not quoted.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_key: Mapped[str | None] = mapped_column(String(128))
    # A peer node's model (prsm/federation/market.py): the peer's operator, the kind and the
    # prices it asks itself (the card's prices add this node's federation fee).
    peer: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuerySession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The account that pays (its API key's); `user` is the caller's own end-user tag (OpenAI's
    # `user`), recorded, never the payer.
    account: Mapped[str] = mapped_column(String(160), index=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed | blocked
    planner: Mapped[str] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    plan_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # FTNS (prsm/ftns/pricing.py): the quote held before running, the charge captured after,
    # and how the charge was split between accounts ({account: base units as a string}).
    hold_id: Mapped[str | None] = mapped_column(String(36))
    quoted: Mapped[int | None] = mapped_column(TokenAmount)
    charged: Mapped[int | None] = mapped_column(TokenAmount)
    charge_split: Mapped[dict | None] = mapped_column(JSON)

    tasks: Mapped[list[PlanTask]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="PlanTask.position"
    )
    steps: Mapped[list[ReasoningStep]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="ReasoningStep.seq"
    )
    flags: Mapped[list[SafetyFlag]] = relationship(back_populates="session", cascade="all, delete-orphan")


class PlanTask(Base):
    __tablename__ = "plan_tasks"
    __table_args__ = (UniqueConstraint("session_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    depends_on: Mapped[list] = mapped_column(JSON, default=list)
    capability: Mapped[str] = mapped_column(String(64))
    # The cluster of similar sub-tasks the router placed it in (prsm/clusters.py); "" : none.
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")
    instruction: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | done | failed | skipped
    assigned_model: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ranking: Mapped[list] = mapped_column(JSON, default=list)
    cost: Mapped[int] = mapped_column(TokenAmount, default=0)  # measured usage x the model's price
    # Answered from the sub-task cache (prsm/nwtn/cache.py): the model did not run.
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    session: Mapped[QuerySession] = relationship(back_populates="tasks")


class SubtaskCacheEntry(Base):
    """A deterministic model's answer to one sub-task, by the digest of everything that decides it
    (prsm/nwtn/cache.py)."""

    __tablename__ = "subtask_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128))
    result: Mapped[str] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ReasoningStep(Base):
    __tablename__ = "reasoning_steps"
    __table_args__ = (Index("ix_reasoning_steps_session_seq", "session_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))  # safety | planner | router | model | compiler
    task_key: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(String(128))
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    session: Mapped[QuerySession] = relationship(back_populates="steps")


class SafetyFlag(Base):
    __tablename__ = "safety_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))  # notice | block
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    session: Mapped[QuerySession] = relationship(back_populates="flags")


# --- API keys (prsm/keys.py) -------------------------------------------------------------------


class ApiKey(Base):
    """An API key: the SHA-256 of its secret (the secret itself is shown once, never stored), the
    account it acts for and its role. Revoked or expired keys stay, for the audit trail."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the key's public part
    account_id: Mapped[str] = mapped_column(ForeignKey("ftns_accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # KeyRole
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[str | None] = mapped_column(String(32))  # the key a rotation made
    # Limits (prsm/api/ratelimit.py); none: unlimited.
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    budget: Mapped[int | None] = mapped_column(TokenAmount)  # FTNS base units per period
    budget_period_s: Mapped[int | None] = mapped_column(Integer)


class AuditRecord(Base):
    """One state-changing request (prsm/audit.py): append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_account_id", "account", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    account: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(200))
    object: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)


# --- FTNS ledger (prsm/ftns/ledger.py) -------------------------------------------------------


class LedgerAccount(Base):
    """An FTNS account. `balance` is what the account holds now, in base units (10^-18 FTNS)."""

    __tablename__ = "ftns_accounts"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | owner | operator | treasury | escrow | issuance
    balance: Mapped[int] = mapped_column(TokenAmount, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerTransaction(Base):
    """One ledger operation; its entries sum to zero. The idempotency key makes a retry a no-op."""

    __tablename__ = "ftns_transactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(
        String(16)
    )  # mint | burn | transfer | credit | hold | capture | release
    hold_id: Mapped[str | None] = mapped_column(String(36), index=True)
    memo: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ftns_entries"
    __table_args__ = (Index("ix_ftns_entries_account_seq", "account_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ftns_transactions.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ftns_accounts.id"))
    amount: Mapped[int] = mapped_column(TokenAmount)  # signed: + credit to the account, - debit
    balance_after: Mapped[int] = mapped_column(TokenAmount)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerHold(Base):
    """Funds reserved for one query: open until captured (charged) or released."""

    __tablename__ = "ftns_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ftns_accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(TokenAmount)
    status: Mapped[str] = mapped_column(String(16))  # open | captured | released
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- chain settlement (prsm/chain/epochs.py) ------------------------------------------------


class ChainAddress(Base):
    """The on-chain address of a ledger account: where its earnings are paid, and whose deposits
    are credited to it. `settled_through` is the last ledger entry whose earnings were settled."""

    __tablename__ = "chain_addresses"

    account_id: Mapped[str] = mapped_column(ForeignKey("ftns_accounts.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)
    settled_through: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChainState(Base):
    """Small facts about a chain: deployed contract addresses, the deposit scanner's cursor."""

    __tablename__ = "chain_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FederationPeer(Base):
    """A member of the federation as this node follows the node registry (prsm/federation/
    follow.py): what it announced, and its catalogue once fetched and checked."""

    __tablename__ = "federation_peers"

    operator: Mapped[str] = mapped_column(String(42), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(256))
    catalogue: Mapped[str] = mapped_column(String(128))  # its CID
    block: Mapped[int] = mapped_column(Integer)  # of the announcement
    status: Mapped[str] = mapped_column(String(16))  # pending | ok | bad_catalogue
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    document: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the checked catalogue
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SettlementEpoch(Base):
    """One settlement: open (amounts frozen in the ledger) -> submitted (signed transaction, its
    hash and nonce stored before it is sent) -> confirmed (mined, enough blocks on top)."""

    __tablename__ = "settlement_epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # open | submitted | confirmed
    through_entry: Mapped[int] = mapped_column(Integer)  # earnings up to this ledger entry
    payees: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(TokenAmount)
    tx_hash: Mapped[str | None] = mapped_column(String(66), unique=True)
    nonce: Mapped[int | None] = mapped_column(Integer)
    raw_tx: Mapped[str | None] = mapped_column(Text)
    block_number: Mapped[int | None] = mapped_column(Integer)
    gas_used: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SettlementLine(Base):
    __tablename__ = "settlement_lines"
    __table_args__ = (UniqueConstraint("epoch_id", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    epoch_id: Mapped[int] = mapped_column(ForeignKey("settlement_epochs.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ftns_accounts.id"))
    address: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(TokenAmount)


# --- content-addressed artifacts (prsm/storage/artifacts.py) ----------------------------------


class Artifact(Base):
    """Provenance of something in the content-addressed store: what it is, who made it, from what."""

    __tablename__ = "artifacts"

    cid: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # model | dataset | trace
    size: Mapped[int] = mapped_column(BigInteger)
    creator: Mapped[str] = mapped_column(String(160), index=True)  # an account id
    parents: Mapped[list] = mapped_column(JSON, default=list)  # CIDs it was made from
    licence: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- scheduled operations (prsm/ops.py) ---------------------------------------------------------


class ScheduleRow(Base):
    """One scheduled job (sweep, settle, gc): when it is due, who holds its lease, its last run.
    Times are Unix seconds: the lease is compared in one UPDATE on SQLite and PostgreSQL alike."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    every_s: Mapped[float] = mapped_column(Float)
    due_at: Mapped[float] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    last_ok_at: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))  # ok | failed | skipped
    detail: Mapped[str | None] = mapped_column(String(500))
    duration_s: Mapped[float | None] = mapped_column(Float)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


# --- quality: what users say about answers (prsm/nwtn/sessions.py) ---------------------------


class Feedback(Base):
    """A rating of a session's answer (`task_key` "") or of one of its sub-tasks, by the
    session's own account: one per target, the latest rating kept."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("session_id", "task_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    task_key: Mapped[str] = mapped_column(String(32))  # "" : the whole answer
    score: Mapped[float] = mapped_column(Float)  # 0 (wrong, useless) .. 1 (right, useful)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GradeRow(Base):
    """One grade of one model's answer to one sub-task (prsm/quality.py): by a grader (an exact
    tool's success, agreement with a reference model) or by the session's user. Append-only,
    except a user's rating, which a new rating replaces."""

    __tablename__ = "grades"
    __table_args__ = (Index("ix_grades_session_task", "session_id", "task_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str | None] = mapped_column(String(36))
    task_key: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    capability: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")  # "" : none
    grader: Mapped[str] = mapped_column(String(160))  # tool | reference:<model> | feedback
    score: Mapped[float] = mapped_column(Float)  # 0 .. 1
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ModelQuality(Base):
    """A model's running grade totals per capability and cluster of similar sub-tasks: the count
    and the sum of its grades, added to in SQL (concurrent replicas never lose a grade)."""

    __tablename__ = "model_quality"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    capability: Mapped[str] = mapped_column(String(64), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    n: Mapped[float] = mapped_column(Float, default=0.0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaskClusterRow(Base):
    """A cluster of similar sub-tasks (prsm/clusters.py): its centroid in one embedding model's
    space, the capability of its sub-tasks, how many it was made from and one example."""

    __tablename__ = "task_clusters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    capability: Mapped[str] = mapped_column(String(64))
    embedding_key: Mapped[str] = mapped_column(String(128))  # the embedding model's name
    centroid: Mapped[bytes] = mapped_column(LargeBinary)  # float32, unit length
    size: Mapped[int] = mapped_column(Integer)
    example: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CanaryRow(Base):
    """A student taking a stepped share of one cluster's traffic while its shadow grades against
    the model that served the cluster (the incumbent) are tested (prsm/canary.py)."""

    __tablename__ = "canaries"
    __table_args__ = (UniqueConstraint("student", "cluster"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student: Mapped[str] = mapped_column(String(128))
    cluster: Mapped[str] = mapped_column(String(64))
    capability: Mapped[str] = mapped_column(String(64))
    incumbent: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # canary | promoted | rolled_back
    step: Mapped[int] = mapped_column(Integer, default=0)
    share: Mapped[float] = mapped_column(Float)
    # The incumbent's own agreement across the cluster's sub-tasks (prsm/loop.py measures it; 1
    # when unmeasured): the grades are tested against target x baseline (prsm/canary.py).
    baseline: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    # The shadow grades of the student's canary answers: count, sum, sum of squares; `step_n` the
    # count when the current step began.
    n: Mapped[float] = mapped_column(Float, default=0.0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    total_sq: Mapped[float] = mapped_column(Float, default=0.0)
    step_n: Mapped[float] = mapped_column(Float, default=0.0)
    decisions: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataSharing(Base):
    """Whether an account's sessions may feed the data sets the learning loop distils students
    from (prsm/loop.py); no row: the operator's default (PRSM_DATA_SHARING_DEFAULT)."""

    __tablename__ = "data_sharing"

    account_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    allowed: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
