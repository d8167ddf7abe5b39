"""Backup and restore time for a node of 10,000 sessions, on SQLite and on PostgreSQL.

In one run, for each database:
  - a node is filled through NWTN itself (in process: the real planner, router, tools in their
    sandbox, session writer and ledger; the language model is a fake that answers at once, since
    a model's speed is not what is measured): SESSIONS queries, a third of them with a language
    model sub-task, plus a pinned 64 MiB dataset in the local store;
  - `prsm backup` of it (database, store, keys) is timed, then `prsm restore` onto a fresh data
    folder (and database), and the restored node is checked: same balances, same number of
    sessions and rows, the dataset read back verified;
  - a backup is taken again while queries keep running, and its restore checked for double
    entry (each transaction sums to zero, balances equal their entries);
  - the baseline: the raw copy of the same state (SQLite's backup API or a bare pg_dump, and a
    `cp -r` of the store), so the ratio shows what PRSM's checks and manifest cost.

    python benchmarks/backup.py [--quick] [--no-postgres]
Writes benchmarks/results/backup.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.* (the in-process node and the PostgreSQL starter)
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.backup import _pg_command, _pg_tool, backup, restore  # noqa: E402
from prsm.services import Services  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from tests.backup_checks import consistent, node  # noqa: E402
from tests.services import fresh_database, private_postgres  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "backup.json"
DATASET_BYTES = 64 * 1024**2
PROMPTS = (
    "Convert {n} km to miles",
    "Convert {n} kg to lb. In one sentence, what is entropy?",
    "What is {n} + 17?",
)


def settings_for(folder: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=folder, database_url=database_url, _env_file=None)


def fill(services: Services, sessions: int) -> None:
    nwtn = node(services)
    services.ledger.mint("alice", 10**24, "bench-funds")

    async def run() -> None:
        for start in range(0, sessions, 50):
            batch = range(start, min(start + 50, sessions))
            traces = await asyncio.gather(
                *(nwtn.query(PROMPTS[i % 3].format(n=i + 1), "alice") for i in batch)
            )
            bad = [t["status"] for t in traces if t["status"] != "completed"]
            assert not bad, bad
            if (start // 50) % 20 == 0:
                print(f"  {start + len(batch)}/{sessions} sessions", flush=True)

    asyncio.run(run())
    cid = services.store.put(os.urandom(DATASET_BYTES))
    services.store.pin(cid)
    services.sealer  # noqa: B018 (secret.key, as a node that sealed a credential has)


def raw_copy(services: Services, target: Path) -> float:
    """The baseline: the same state copied with no verification, manifest or checksums."""
    target.mkdir()
    started = time.perf_counter()
    if services.db.postgres:
        plain, env = _pg_command(services.settings.resolved_database_url)
        subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--file", str(target / "db.dump"), plain],
                       env=env, check=True, capture_output=True)  # fmt: skip
    else:
        source = services.settings.data_dir / "prsm.db"
        with sqlite3.connect(source) as src, sqlite3.connect(target / "prsm.db") as dst:
            src.backup(dst)
    shutil.copytree(services.settings.resolved_store_dir, target / "store")
    return time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(kind: str, sessions: int, pg_url: str | None) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"prsm-backup-bench-{kind}-"))
    try:
        url = fresh_database(pg_url) if pg_url else None
        with Services.from_settings(settings_for(root / "node", url), upgrade=True) as services:
            t = time.perf_counter()
            fill(services, sessions)
            fill_s = time.perf_counter() - t
            print(f"{kind}: {sessions} sessions in {fill_s:.1f} s", flush=True)
            before = {a: services.ledger.balance(a) for a in ("alice", "local-operator")}

            done = backup(services, root / "backup")
            print(
                f"{kind}: backup {done.seconds:.2f} s { ({k: round(v, 2) for k, v in done.steps.items()}) }"
            )
            raw_s = raw_copy(services, root / "raw")
            print(f"{kind}: raw copy {raw_s:.2f} s")

            url2 = fresh_database(pg_url) if pg_url else None
            with Services(settings_for(root / "restored", url2)) as fresh:
                back = restore(fresh, root / "backup")
                print(
                    f"{kind}: restore {back.seconds:.2f} s { ({k: round(v, 2) for k, v in back.steps.items()}) }"
                )
                assert back.tables["sessions"] == sessions == done.tables["sessions"]
                assert {a: fresh.ledger.balance(a) for a in before} == before
                assert fresh.store.read(fresh.store.pins()[0]) is not None
                consistent(fresh)

            # Under load: queries keep running through the backup.
            nwtn, stop, ran = node(services), threading.Event(), []

            def load() -> None:
                while not stop.is_set():
                    asyncio.run(nwtn.query("Convert 3 km to miles", "alice"))
                    ran.append(1)

            worker = threading.Thread(target=load)
            worker.start()
            try:
                under = backup(services, root / "backup-under-load")
            finally:
                stop.set()
                worker.join()
            url3 = fresh_database(pg_url) if pg_url else None
            with Services(settings_for(root / "restored-2", url3)) as fresh:
                restore(fresh, root / "backup-under-load")
                consistent(fresh)
            print(
                f"{kind}: backup under load {under.seconds:.2f} s, {len(ran)} queries ran meanwhile, restore consistent"
            )
        return {
            "sessions": sessions,
            "rows": sum(done.tables.values()),
            "store_bytes": done.bytes,
            "fill_seconds": round(fill_s, 2),
            "backup_seconds": round(done.seconds, 3),
            "backup_steps_seconds": {k: round(v, 3) for k, v in done.steps.items()},
            "backup_bytes": folder_bytes(root / "backup"),
            "restore_seconds": round(back.seconds, 3),
            "restore_steps_seconds": {k: round(v, 3) for k, v in back.steps.items()},
            "raw_copy_seconds": round(raw_s, 3),
            "backup_vs_raw_copy_ratio": round(done.seconds / raw_s, 2),
            "backup_under_load_seconds": round(under.seconds, 3),
            "queries_during_backup": len(ran),
            "restored_state_equal": True,
            "restored_under_load_consistent": True,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 sessions instead of 10,000")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = p.parse_args()
    sessions = 1_000 if args.quick else 10_000
    results = {"machine": machine(), "quick": args.quick, "sqlite": measure("sqlite", sessions, None)}
    if not args.no_postgres:
        with private_postgres() as url:
            results["postgresql"] = measure("postgresql", sessions, url)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for kind in ("sqlite", "postgresql"):
        if kind in results:
            r = results[kind]
            print(f"{kind}: {r['sessions']} sessions ({r['rows']} rows, {r['store_bytes']} store bytes): "
                  f"backup {r['backup_seconds']} s, restore {r['restore_seconds']} s, "
                  f"raw copy {r['raw_copy_seconds']} s (ratio {r['backup_vs_raw_copy_ratio']})")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
