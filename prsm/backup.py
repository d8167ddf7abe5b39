"""`prsm backup DIR` and `prsm restore DIR`: everything a PRSM node keeps, copied while it runs,
and put back onto a fresh data folder.

A backup holds, in this order (the order makes it consistent: the store is read after the
database, so every artifact the database names has its blocks in the backup):
- the database: SQLite through its online backup API (one read transaction: a snapshot of a
  single moment, while the app keeps writing), PostgreSQL through `pg_dump` (likewise one
  snapshot) in its custom format;
- the content store: with the local store, every block the pins reach, each verified against its
  CID as it is read, in a local store of its own (`store/`); with an IPFS node, the list of pins
  (`pins.txt`: the node keeps the blocks, and its own backup keeps them safe);
- the embedded chain's journal (`chain/journal.jsonl`), copied under the journal's lock so no
  transaction is half-appended (none with `PRSM_CHAIN_URL`: the chain keeps its own state);
- the key files: `keys.json` (the operator's and development keys `prsm up` made) and
  `secret.key` (it seals remote cards' credentials: without it they cannot be opened).

`manifest.json` lists every file with its SHA-256 and size, the database's migration revision and
the number of rows of each table. The backup is written under `DIR.partial` and renamed to DIR
at the end, so a DIR that exists is a whole backup. It holds secrets: DIR is made mode 0700 and
the key files keep mode 0600.

Restore checks every checksum first, refuses a data folder (or PostgreSQL database) that is not
fresh, writes the database (PostgreSQL: one transaction), the store (each block verified), the
journal and the key files, migrates the database to this version's newest revision and compares
the row counts with the manifest. A failure removes what it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from prsm.db.engine import Database, current_revision
from prsm.db.models import Base
from prsm.errors import BackupError, InvalidInput
from prsm.services import Services
from prsm.storage.cid import CID
from prsm.storage.local import LocalStore

FORMAT = 1
KEY_FILES = ("keys.json", "secret.key")
LOCK_WAIT_S = 60.0  # how long a backup waits for a settlement run to free the embedded chain


@dataclass
class Report:
    folder: Path
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    tables: dict[str, int] = field(default_factory=dict)
    pins: int = 0
    blocks: int = 0
    bytes: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _private(path: Path) -> None:
    path.chmod(0o600)


def table_counts(conn) -> dict[str, int]:
    """Rows of each of PRSM's tables that the database has, as `conn` sees them."""
    present = set(inspect(conn).get_table_names())
    return {
        name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for name, table in sorted(Base.metadata.tables.items())
        if name in present
    }


def _pg_tool(name: str) -> str:
    """The newest PostgreSQL client tool installed (Debian keeps them per version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return name
    raise BackupError(
        f"{name} is not installed: it comes with PostgreSQL's client (apt-get install postgresql-client)"
    )


def _pg_command(url: str) -> tuple[str, dict]:
    """The database URL for libpq without its password, and an environment carrying it (a
    password on a command line is visible to every user of the machine)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    plain = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def _run(command: list[str], env: dict, what: str, timeout_s: float = 3600) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} took over {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-2000:]}")


@contextlib.contextmanager
def _journal_locked(journal: Path):
    """The embedded chain's journal, locked as a process using the chain locks it."""
    wait_s = LOCK_WAIT_S
    with open(journal, "a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"another process has used the embedded chain ({journal}) for {wait_s:.0f} s: "
                        "stop it (or wait for its settlement run) and back up again"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- backup -------------------------------------------------------------------------------------


def backup(services: Services, target: Path, on_step=None) -> Report:
    """Write a backup of this node to `target` (a folder that must not exist yet)."""
    step = on_step or (lambda name, seconds: None)
    target = Path(target).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"{target} exists and is not an empty folder: give a new folder", "dir")
    settings = services.settings
    partial = target.with_name(f"{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    started = time.perf_counter()
    report = Report(target)
    manifest: dict = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "files": {}}
    try:
        # 1. The database (first: what the store must cover).
        t = time.perf_counter()
        url = settings.resolved_database_url
        manifest["revision"] = current_revision(url)
        if services.db.postgres:
            manifest["database"] = "postgresql"
            manifest["tables"] = report.tables = _pg_dump(url, partial / "prsm.pgdump", services.db.engine)
        else:
            manifest["database"] = "sqlite"
            source = make_url(url).database
            with sqlite3.connect(source, timeout=30) as src, sqlite3.connect(partial / "prsm.db") as dst:
                src.backup(dst)  # pages=-1: the whole file in one step, one snapshot
            dst.close()
            src.close()
            copy = Database.open(f"sqlite:///{partial / 'prsm.db'}")
            with copy.engine.connect() as conn:
                manifest["tables"] = report.tables = table_counts(conn)
            copy.engine.dispose()
            copy.writer.dispose()
        report.steps["database"] = time.perf_counter() - t
        step("database", report.steps["database"])

        # 2. The store's pinned content.
        t = time.perf_counter()
        store = services.store
        pins = store.pins()
        report.pins = len(pins)
        if store.backend == "local":
            manifest["store"] = "local"
            copy = LocalStore(partial / "store")
            try:
                report.blocks, report.bytes = _copy_pinned(store, copy, pins)
            finally:
                copy.close()
        else:
            manifest["store"] = "ipfs"
        (partial / "pins.txt").write_text("".join(f"{cid}\n" for cid in pins))
        report.steps["store"] = time.perf_counter() - t
        step("store", report.steps["store"])

        # 3. The embedded chain's journal, 4. the key files.
        t = time.perf_counter()
        journal = settings.data_dir / "chain" / "journal.jsonl"
        manifest["chain"] = settings.chain_url and "external" or "embedded"
        if not settings.chain_url and journal.exists():
            (partial / "chain").mkdir()
            with _journal_locked(journal):
                shutil.copyfile(journal, partial / "chain" / "journal.jsonl")
        for name in KEY_FILES:
            if (settings.data_dir / name).exists():
                shutil.copyfile(settings.data_dir / name, partial / name)
                _private(partial / name)
        report.steps["chain and keys"] = time.perf_counter() - t
        step("chain and keys", report.steps["chain and keys"])

        for path in sorted(partial.rglob("*")):
            if path.is_file() and not _is_index_scratch(path):
                manifest["files"][str(path.relative_to(partial))] = {"sha256": _sha256(path), "bytes": path.stat().st_size}  # fmt: skip
        report.seconds = time.perf_counter() - started
        manifest["seconds"] = round(report.seconds, 3)
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            target.rmdir()  # empty (checked above)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return report


def _is_index_scratch(path: Path) -> bool:
    """The store index's WAL and shared-memory files: gone once its connections close."""
    return path.name.endswith(("-wal", "-shm"))


def _pg_dump(url: str, target: Path, engine) -> dict[str, int]:
    """pg_dump of one snapshot, exported from a transaction that counts the rows in the same
    snapshot: the manifest's counts are the dump's, however busy the database is."""
    plain, env = _pg_command(url)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        counts = table_counts(conn)
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", f"--snapshot={snapshot}",
              "--file", str(target), plain], env, "pg_dump")  # fmt: skip
    return counts


def _copy_pinned(source, target: LocalStore, pins: list[str]) -> tuple[int, int]:
    """Every block the pins reach, verified as read, into `target`, pins kept; (blocks, bytes)."""
    blocks = size = 0
    for root in pins:
        cids = list(dict.fromkeys(source._blocks_of(CID.parse(root))))

        def produce(emit, cids=cids):
            nonlocal blocks, size
            for cid in cids:
                data = source.block(cid)  # verified against its CID
                emit(CID.parse(cid), data)
                blocks += 1
                size += len(data)

        target._write_pack(produce)
        target.pin(root)
    return blocks, size


# --- restore ------------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict:
    folder = Path(folder).expanduser().resolve()
    path = folder / "manifest.json"
    if not path.is_file():
        raise InvalidInput(f"{folder} is not a PRSM backup: it has no manifest.json", "dir")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise InvalidInput(
            f"{folder}: backup format {manifest.get('format')!r}; this PRSM reads {FORMAT}", "dir"
        )
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise BackupError(f"{folder} lacks {name}: the backup is incomplete")
        if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise BackupError(f"{folder}/{name} does not match its checksum: the backup is damaged")
    return manifest


def _fresh(services: Services, manifest: dict) -> None:
    """Refuse a target that already holds a node's state, naming what is there."""
    settings, there = services.settings, []
    if services.db.postgres:
        if manifest["database"] != "postgresql":
            raise InvalidInput(
                "this backup holds a SQLite database: restore it with PRSM_DATABASE_URL unset", "dir"
            )
        if inspect(services.db.engine).get_table_names():
            there.append("the PostgreSQL database has tables")
    else:
        if manifest["database"] != "sqlite":
            raise InvalidInput("this backup holds a PostgreSQL dump: set PRSM_DATABASE_URL to an empty PostgreSQL database", "dir")  # fmt: skip
        path = Path(make_url(settings.resolved_database_url).database)
        if path.exists():
            there.append(str(path))
    if (manifest["store"] == "local") != (services.store.backend == "local"):
        raise InvalidInput(
            f"this backup's store is {manifest['store']}; this node's is {services.store.backend}: set or unset PRSM_IPFS_URL to match",
            "dir",
        )  # fmt: skip
    if services.store.backend == "local" and services.store.pins():
        there.append(f"{settings.resolved_store_dir} has pinned content")
    journal = settings.data_dir / "chain" / "journal.jsonl"
    if journal.exists() and journal.stat().st_size:
        there.append(str(journal))
    there += [str(settings.data_dir / n) for n in KEY_FILES if (settings.data_dir / n).exists()]
    if there:
        raise BackupError("restore needs a fresh data folder, and this one holds: " + ", ".join(there))


def restore(services: Services, folder: Path, on_step=None) -> Report:
    """Put the backup in `folder` onto this node's fresh data folder (and database)."""
    step = on_step or (lambda name, seconds: None)
    folder = Path(folder).expanduser().resolve()
    started = time.perf_counter()
    t = time.perf_counter()
    manifest = read_manifest(folder)
    step("checksums", time.perf_counter() - t)
    _fresh(services, manifest)
    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    report = Report(folder)
    written: list[Path] = []
    try:
        t = time.perf_counter()
        url = settings.resolved_database_url
        if manifest["database"] == "postgresql":
            plain, env = _pg_command(url)
            _run([_pg_tool("pg_restore"), "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error",
                  "--dbname", plain, str(folder / "prsm.pgdump")], env, "pg_restore")  # fmt: skip
        else:
            path = Path(make_url(url).database)
            partial = path.with_name(f".{path.name}.restoring")
            written += [partial, path]
            shutil.copyfile(folder / "prsm.db", partial)
            partial.rename(path)
        services.db.upgrade()  # a backup of an older version: migrated to this one
        with services.db.engine.connect() as conn:
            report.tables = table_counts(conn)
        older = {n: c for n, c in manifest["tables"].items() if report.tables.get(n, 0) != c}
        if older:
            raise BackupError(
                f"restored row counts differ from the backup's: {older} against {report.tables}"
            )
        report.steps["database"] = time.perf_counter() - t
        step("database", report.steps["database"])

        t = time.perf_counter()
        pins = [line for line in (folder / "pins.txt").read_text().splitlines() if line]
        report.pins = len(pins)
        if manifest["store"] == "local":
            source = LocalStore(folder / "store")
            try:
                report.blocks, report.bytes = _copy_pinned(source, services.store, pins)
            finally:
                source.close()
        else:
            missing = [cid for cid in pins if not services.store.has(cid)]
            if missing:
                raise BackupError(f"the IPFS node lacks {len(missing)} pinned CIDs, e.g. {missing[0]}: restore the node's own data first")  # fmt: skip
            for cid in pins:
                services.store.pin(cid)
        report.steps["store"] = time.perf_counter() - t
        step("store", report.steps["store"])

        t = time.perf_counter()
        if (folder / "chain" / "journal.jsonl").exists():
            journal = settings.data_dir / "chain" / "journal.jsonl"
            journal.parent.mkdir(parents=True, exist_ok=True)
            written.append(journal)
            shutil.copyfile(folder / "chain" / "journal.jsonl", journal)
        for name in KEY_FILES:
            if (folder / name).exists():
                written.append(settings.data_dir / name)
                shutil.copyfile(folder / name, settings.data_dir / name)
                _private(settings.data_dir / name)
        report.steps["chain and keys"] = time.perf_counter() - t
        step("chain and keys", report.steps["chain and keys"])
    except BaseException:
        _undo(services, written, manifest)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _undo(services: Services, written: list[Path], manifest: dict) -> None:
    """Remove what a failed restore wrote, so the folder is fresh again."""
    services.close()
    for path in written:
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
    store = services.settings.resolved_store_dir
    if manifest.get("store") == "local" and store.exists():
        shutil.rmtree(store, ignore_errors=True)
    if services.db.postgres:
        with services.db.engine.begin() as conn:
            for table in reversed(inspect(conn).get_table_names()):
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
