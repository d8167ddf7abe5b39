"""Analytics over PRSM's own records with DuckDB: what ran, what it cost, how fast, how good.

DuckDB reads the database where it is, read-only, through its SQLite or PostgreSQL scanner
(nothing is copied or exported first): the sessions and their sub-tasks, the grades
(prsm/quality.py) and the ledger. The scanners come from the PyPI wheels
`duckdb-extension-sqlite` and `duckdb-extension-postgres-scanner`, installed into a folder of the
data directory from the wheel's file: DuckDB never downloads anything (ENVIRONMENT: DuckDB 2.x
cannot load them offline, so DuckDB is pinned to 1.5.5). The queries read views named after
PRSM's tables; on PostgreSQL each view reads its table through `postgres_query` with amounts as
text, because the scanner would read NUMERIC(78, 0) as a double (inexact past 2^53 base units).

- `subtasks`: by any of day, capability and model: answered sub-tasks, their cost (what their
  models' prices made of their measured tokens), latency p50/p95, and the mean grade of those
  answers with the number of grades.
- `queries`: by day: queries by outcome, what users were charged, latency p50/p95.
- `earnings`: what each account was paid out of captured charges in the window.
- `candidates`: what to distil next. Sub-tasks answered by language models, their instructions
  clustered by sentence embeddings (a greedy leader clustering: an instruction joins the most
  similar cluster at cosine >= `threshold`, else starts one), ranked by the cost they incurred
  (volume x mean cost of the models that served them).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.engine import make_url

from prsm.clusters import THRESHOLD, TaskCluster
from prsm.db.models import Base, TokenAmount
from prsm.errors import InvalidInput
from prsm.ftns.amounts import FTNS
from prsm.settings import Settings

# What the queries read, as views of the same names over the attached database.
TABLES = tuple(
    Base.metadata.tables[name]
    for name in ("sessions", "plan_tasks", "grades", "model_cards", "ftns_accounts", "ftns_entries",
                 "ftns_transactions", "ftns_holds")
)  # fmt: skip
DIMENSIONS = {"day": "CAST(s.created_at AS DATE)", "capability": "t.capability", "cluster": "t.cluster",
              "model": "t.assigned_model"}  # fmt: skip
SCANNERS = {"sqlite": "duckdb_extension_sqlite", "postgres": "duckdb_extension_postgres_scanner"}
LANGUAGE_MODEL_KINDS = ("transformers", "openai")


def connect(settings: Settings):
    """A DuckDB connection with PRSM's database attached read-only as `db`."""
    import duckdb

    url = make_url(settings.resolved_database_url)
    backend = "sqlite" if url.get_backend_name() == "sqlite" else "postgres"
    if backend == "postgres" and url.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"prsm stats reads SQLite or PostgreSQL, not {url.get_backend_name()}", "database_url"
        )
    folder = settings.data_dir / "duckdb"
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"extension_directory": str(folder), "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})  # fmt: skip
    con.execute("SET TimeZone = 'UTC'")  # days are UTC days, whatever the machine's zone
    con.execute(f"INSTALL '{_scanner_file(backend)}'")
    con.execute(f"LOAD {'sqlite' if backend == 'sqlite' else 'postgres_scanner'}")
    if backend == "sqlite":
        path = Path(url.database or "").resolve()
        if not path.is_file():
            raise InvalidInput(
                f"no database at {path} (run the app once, or `prsm db upgrade`)", "database_url"
            )
        target = str(path)
    else:
        target = _libpq(url)
    con.execute(f"ATTACH {_quote(target)} AS db (TYPE {backend}, READ_ONLY)")
    for table in TABLES:
        if backend == "sqlite":  # SQLite keeps amounts as decimal text already
            con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM db.{table.name}")
            continue
        # The PostgreSQL scanner reads NUMERIC(78, 0) as a double: amounts come across as text.
        columns = ", ".join(f'"{c.name}"::text AS "{c.name}"' if isinstance(c.type, TokenAmount) else f'"{c.name}"'
                            for c in table.columns)  # fmt: skip
        query = _quote(f"SELECT {columns} FROM {table.name}")
        con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM postgres_query('db', {query})")
    return con


def _scanner_file(backend: str) -> Path:
    spec = importlib.util.find_spec(SCANNERS[backend])
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(f"install the {SCANNERS[backend].replace('_', '-')} package (pip)", "database_url")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.duckdb_extension"))
    if not found:
        raise InvalidInput(f"the {SCANNERS[backend]} package has no extension file", "database_url")
    return found[-1]


def _libpq(url) -> str:
    """A libpq connection string from a SQLAlchemy URL (the postgres scanner's form)."""
    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username,
             "password": url.password}  # fmt: skip
    parts |= {k: v for k, v in url.query.items() if isinstance(v, str)}
    return " ".join(f"{k}={_libpq_value(str(v))}" for k, v in parts.items() if v is not None)


def _libpq_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def dimensions(by: str) -> list[str]:
    """`--by`: a comma-separated subset of day, capability, cluster, model, in that order of grouping."""
    chosen = [d.strip() for d in by.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in DIMENSIONS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise InvalidInput(
            f"--by takes day, capability, cluster and/or model, comma-separated; not {by!r}", "by"
        )
    return chosen


def since(days: float) -> datetime:
    if not 0 < days <= 36_600:
        raise InvalidInput(f"--days is a number of days above 0, not {days!r}", "days")
    return datetime.now(UTC) - timedelta(days=days)


def _rows(con, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _amount(value) -> dict:
    base = int(value or 0)
    return {"base_units": str(base), "ftns": base / FTNS}


def subtasks(con, start: datetime, by: list[str]) -> list[dict]:
    keys = ", ".join(f"{DIMENSIONS[d]} AS {d}" for d in by)
    rows = _rows(con, f"""
        WITH graded AS (
            SELECT session_id, task_key, model_id, avg(score) AS score, count(*) AS n
            FROM grades GROUP BY session_id, task_key, model_id
        )
        SELECT {keys}, count(*) AS subtasks, sum(CAST(t.cost AS HUGEINT)) AS cost,
               quantile_cont(t.latency_ms, 0.5) AS p50_ms, quantile_cont(t.latency_ms, 0.95) AS p95_ms,
               sum(g.score * g.n) / nullif(sum(g.n), 0) AS quality, coalesce(sum(g.n), 0) AS grades
        FROM plan_tasks t JOIN sessions s ON s.id = t.session_id
        LEFT JOIN graded g ON g.session_id = t.session_id AND g.task_key = t.key
                          AND g.model_id = t.assigned_model
        WHERE t.status = 'done' AND s.created_at >= ?
        GROUP BY ALL ORDER BY ALL
    """, [start])  # fmt: skip
    for row in rows:
        row["cost"] = _amount(row["cost"])
        row["grades"] = int(row["grades"])
        if "day" in row:
            row["day"] = row["day"].isoformat()
    return rows


def queries(con, start: datetime) -> list[dict]:
    rows = _rows(con, """
        SELECT CAST(s.created_at AS DATE) AS day, count(*) AS queries,
               count(*) FILTER (WHERE s.status IN ('completed', 'partial')) AS answered,
               count(*) FILTER (WHERE s.status = 'failed') AS failed,
               count(*) FILTER (WHERE s.status = 'blocked') AS blocked,
               sum(CAST(coalesce(s.charged, '0') AS HUGEINT)) AS charged,
               quantile_cont(s.latency_ms, 0.5) AS p50_ms, quantile_cont(s.latency_ms, 0.95) AS p95_ms
        FROM sessions s WHERE s.created_at >= ? GROUP BY ALL ORDER BY ALL
    """, [start])  # fmt: skip
    for row in rows:
        row["day"] = row["day"].isoformat()
        row["charged"] = _amount(row["charged"])
    return rows


def earnings(con, start: datetime) -> list[dict]:
    """Payouts of captured charges by account (a capture's return of the unused hold to its payer
    is not an earning)."""
    rows = _rows(con, """
        SELECT e.account_id AS account, a.kind, count(*) AS payments, sum(CAST(e.amount AS HUGEINT)) AS earned
        FROM ftns_entries e
        JOIN ftns_transactions x ON x.id = e.transaction_id AND x.kind = 'capture'
        JOIN ftns_holds h ON h.id = x.hold_id
        JOIN ftns_accounts a ON a.id = e.account_id
        WHERE CAST(e.amount AS HUGEINT) > 0 AND e.account_id <> h.account_id AND e.created_at >= ?
        GROUP BY ALL ORDER BY earned DESC, account
    """, [start])  # fmt: skip
    for row in rows:
        row["earned"] = _amount(row["earned"])
    return rows


@dataclass
class Cluster:
    capability: str
    leader: str
    centroid: np.ndarray
    instructions: list[str]
    models: dict[str, int]
    cost: int = 0
    task_ids: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return TaskCluster.new_id(f"{self.capability}:{self.leader}")

    def view(self, examples: int = 3) -> dict:
        volume = len(self.instructions)
        return {"cluster": self.id, "capability": self.capability, "volume": volume, "cost": _amount(self.cost),
                "mean_cost": _amount(self.cost // volume), "models": dict(sorted(self.models.items())),
                "examples": list(dict.fromkeys(self.instructions))[:examples]}  # fmt: skip

    def saved_as(self, embedding_key: str) -> TaskCluster:
        return TaskCluster(self.id, self.capability, embedding_key, self.centroid.astype(np.float32),
                           len(self.instructions), self.leader)  # fmt: skip


def candidates(
    con, embedder, start: datetime, limit: int = 5000, threshold: float = THRESHOLD, top: int = 10
) -> list[dict]:
    """Clusters of language-model sub-tasks, the costliest first (see the module's docstring)."""
    if top < 1:
        raise InvalidInput("--top is at least 1", "top")
    return [c.view() for c in clusters_of(con, embedder, start, limit, threshold)[:top]]


def clusters_of(
    con, embedder, start: datetime, limit: int = 5000, threshold: float = THRESHOLD
) -> list[Cluster]:
    if not 0 < threshold <= 1:
        raise InvalidInput(f"--threshold is a cosine similarity in (0, 1], not {threshold!r}", "threshold")
    if limit < 1:
        raise InvalidInput("--limit is at least 1", "limit")
    kinds = ", ".join(_quote(k) for k in LANGUAGE_MODEL_KINDS)
    rows = con.execute(f"""
        SELECT t.instruction, t.assigned_model, CAST(t.cost AS HUGEINT), t.capability, t.id
        FROM plan_tasks t JOIN sessions s ON s.id = t.session_id
        JOIN model_cards c ON c.id = t.assigned_model
        WHERE t.status = 'done' AND c.kind IN ({kinds}) AND s.created_at >= ?
        ORDER BY s.created_at, t.id LIMIT ?
    """, [start, limit]).fetchall()  # fmt: skip
    return cluster(embedder, rows, threshold)


def cluster(embedder, rows: list[tuple[str, str, int, str, int]], threshold: float) -> list[Cluster]:
    """Greedy leader clustering of (instruction, model, cost, capability, task id) rows, within
    each capability; the costliest cluster first."""
    clusters: list[Cluster] = []
    sums: list[np.ndarray] = []
    vectors = embedder.embed_many([r[0] for r in rows]) if rows else []
    for (instruction, model, cost, capability, task_id), vector in zip(rows, vectors, strict=True):
        best = None
        mine = [i for i, c in enumerate(clusters) if c.capability == capability]
        if mine:
            sims = np.stack([clusters[i].centroid for i in mine]) @ vector
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                best = mine[j]
        if best is None:
            clusters.append(Cluster(capability, instruction, vector.copy(), [], {}))
            sums.append(np.zeros_like(vector))
            best = len(clusters) - 1
        c = clusters[best]
        c.instructions.append(instruction)
        c.task_ids.append(task_id)
        c.models[model] = c.models.get(model, 0) + 1
        c.cost += int(cost or 0)
        sums[best] += vector
        c.centroid = sums[best] / max(float(np.linalg.norm(sums[best])), 1e-9)
    clusters.sort(key=lambda c: (-c.cost, -len(c.instructions), c.id))
    return clusters
