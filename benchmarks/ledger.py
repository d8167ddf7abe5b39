"""How fast the FTNS ledger charges, against the floor of its database.

In one run, on SQLite (the embedded default) and on a private PostgreSQL cluster:
  - ledger: hold + capture pairs per second (what one paid query costs the ledger), one
    operation per transaction, and the same pairs through `Ledger.post_many` in batches of 32;
  - baseline: a plain single-row UPDATE loop (`balance = balance + 1`, one per transaction) on
    the same database with the same engine settings.
Prints both and the ratio ledger / baseline (pairs per second over UPDATEs per second).
PostgreSQL runs with fsync off (a throwaway cluster), for both the ledger and its baseline.

    python benchmarks/ledger.py [--quick]
Writes benchmarks/results/ledger.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.services (the private PostgreSQL starter)
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.db.engine import make_engine  # noqa: E402
from prsm.ftns.ledger import Ledger, capture_op, hold_op  # noqa: E402
from prsm.services import Services  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from tests.services import private_postgres  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "ledger.json"
BATCH = 32


def ledger_pairs(ledger: Ledger, n: int, tag: str) -> float:
    ledger.open_account("payer")
    ledger.open_account("owner", "owner")
    ledger.mint("payer", 10**30, f"{tag}-fund")
    started = time.perf_counter()
    for i in range(n):
        hold = ledger.hold("payer", 10**15, f"{tag}-h{i}")
        ledger.capture(hold.hold_id, {"owner": 10**14}, f"{tag}-c{i}")
    return n / (time.perf_counter() - started)


def ledger_pairs_batched(ledger: Ledger, n: int, tag: str) -> float:
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        keys = range(first, min(first + BATCH, n))
        holds = ledger.post_many([hold_op("payer", 10**15, f"{tag}-bh{i}") for i in keys])
        ledger.post_many(
            [
                capture_op(h.hold_id, {"owner": 10**14}, f"{tag}-bc{i}")
                for i, h in zip(keys, holds, strict=True)
            ]
        )
    return n / (time.perf_counter() - started)


def plain_updates(url: str, n: int) -> float:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, balance BIGINT)")
        )
        conn.execute(text("DELETE FROM bench_counter"))
        conn.execute(text("INSERT INTO bench_counter VALUES (1, 0)"))
    started = time.perf_counter()
    for _ in range(n):
        with engine.begin() as conn:
            conn.execute(text("UPDATE bench_counter SET balance = balance + 1 WHERE id = 1"))
    rate = n / (time.perf_counter() - started)
    engine.dispose()
    return rate


def measure(url: str, n: int, name: str) -> dict:
    settings = Settings(data_dir=tempfile.mkdtemp(prefix="prsm-ledger-"), database_url=url, _env_file=None)
    with Services.from_settings(settings, upgrade=True) as services:
        tag = uuid.uuid4().hex[:8]
        pairs = ledger_pairs(services.ledger, n, tag)
        batched = ledger_pairs_batched(services.ledger, n, tag)
    updates = plain_updates(url, n)
    return {
        "database": name,
        "operations": n,
        "hold_capture_pairs_per_s": pairs,
        "hold_capture_pairs_per_s_batched": batched,
        "plain_updates_per_s": updates,
        "pairs_vs_updates_ratio": pairs / updates,
        "batched_pairs_vs_updates_ratio": batched / updates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 operations per figure instead of 3000")
    args = parser.parse_args()
    n = 300 if args.quick else 3000

    rows = [measure(f"sqlite:///{tempfile.mkdtemp(prefix='prsm-ledger-')}/ledger.db", n, "sqlite")]
    with private_postgres() as admin_url:
        admin = create_engine(
            admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE ledger_bench"))
        admin.dispose()
        rows.append(measure(admin_url.rsplit("/", 1)[0] + "/ledger_bench", n, "postgresql"))

    print(f"\n{'database':>10} | {'pairs/s':>8} {'batched':>8} | {'UPDATE/s':>9} | ratio  batched ratio")
    for r in rows:
        print(
            f"{r['database']:>10} | {r['hold_capture_pairs_per_s']:>8.0f} {r['hold_capture_pairs_per_s_batched']:>8.0f} | "
            f"{r['plain_updates_per_s']:>9.0f} | {r['pairs_vs_updates_ratio']:.2f}   {r['batched_pairs_vs_updates_ratio']:.2f}"
        )
    result = {
        "benchmark": "ledger",
        "quick": args.quick,
        "machine": machine(),
        "rows": rows,
        **{f"{r['database']}_pairs_vs_updates_ratio": r["pairs_vs_updates_ratio"] for r in rows},
        **{
            f"{r['database']}_batched_pairs_vs_updates_ratio": r["batched_pairs_vs_updates_ratio"]
            for r in rows
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
