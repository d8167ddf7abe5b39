"""One database's engines (SQLite embedded, PostgreSQL at scale) and its Alembic migrations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Alembic's scripts. The repository keeps them in its top-level migrations/ folder; a wheel ships
# that folder inside the package as prsm/db/migrations (pyproject.toml maps it), so an installed
# PRSM upgrades its database without a checkout. An editable install reads the checkout's.
_SHIPPED = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_DIR = _SHIPPED if _SHIPPED.is_dir() else Path(__file__).resolve().parents[2] / "migrations"


def make_engine(url: str, write_lock_on_begin: bool = False) -> Engine:
    """An engine for `url`. With `write_lock_on_begin`, a SQLite transaction takes the database's
    write lock when it begins (BEGIN IMMEDIATE), so a read-check-write sequence in it cannot
    interleave with another writer; PostgreSQL code locks rows instead (SELECT ... FOR UPDATE)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        if write_lock_on_begin:
            # pysqlite's own BEGIN is deferred: turn it off and issue ours.
            event.listen(engine, "connect", _no_driver_transactions)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # Several Serve replicas write one SQLite file: WAL lets readers run beside the writer and
    # busy_timeout makes a writer wait for the lock instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _no_driver_transactions(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None


@dataclass(frozen=True)
class Database:
    """The engines of one database, made once per process (prsm/services.py builds it).

    `engine` serves reads and plain writes; `writer` serves read-check-write transactions (the
    ledger, the session writer, settlement). On SQLite they are two engines: the writer's
    transactions take the single write lock at BEGIN, while readers run beside it (WAL). On
    PostgreSQL one engine serves both: writers lock the rows they check.
    """

    url: str
    engine: Engine
    writer: Engine
    orm: sessionmaker[Session]

    @classmethod
    def open(cls, url: str) -> Database:
        engine = make_engine(url)
        writer = engine if engine.dialect.name == "postgresql" else make_engine(url, write_lock_on_begin=True)
        return cls(url, engine, writer, sessionmaker(engine, expire_on_commit=False))

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self.url, revision)

    def dispose(self) -> None:
        self.engine.dispose()
        self.writer.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
