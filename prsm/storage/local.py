"""The local block store, the embedded default: blocks packed in files, an index, pins, GC.

Layout under the root:
- `packs/<name>.pack`: the new blocks of one put, back to back (one file a put, not one a
  block: creating hundreds of small files is what made puts slow, and what varied most);
- `index.sqlite`: where each block is (`blocks`: CID -> pack, offset, size) and the pins;
- `quarantine/`: copies of blocks that failed verification; `tmp/`: packs being written.

- Writes are atomic: a pack is written under `tmp/`, renamed into `packs/` and its blocks
  indexed in one database transaction, so no reader ever finds a CID whose bytes are not all
  there. With `sync=True` (the default) the pack is fsynced before the rename and the index
  commit is durable before `put` returns; `sync=False` skips both (caches that can be refilled).
  A crash leaves at most an unindexed pack or a temporary file, which `gc` removes.
- A block already indexed is not written again.
- Every block read is verified against its CID before its bytes are used; one that does not
  match is copied to `quarantine/`, dropped from the index and the read fails (CorruptBlock):
  the next put of that content writes it again.
- `gc` drops every block no pin reaches, deletes packs with nothing left and rewrites packs
  that are mostly garbage.
- Several processes may share a store (SQLite's locks); `gc` does not know about puts in flight
  in other processes that are not pinned yet, as with IPFS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from prsm import metrics
from prsm.errors import CorruptBlock, NotFound
from prsm.storage.base import BlockStore
from prsm.storage.cid import CID, DAG_PB, build, chunked, hashed

try:  # Linux: start writing a range back to disk now, without waiting for it
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
except (OSError, AttributeError):
    _sync_file_range = None
SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_EVERY = 8 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    cid TEXT PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_by_pack ON blocks (pack);
CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class LocalStore(BlockStore):
    backend = "local"

    def __init__(self, root: Path, threads: int | None = None, sync: bool = True):
        self.root = Path(root)
        self.sync = sync
        for sub in ("packs", "quarantine", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._fd_caches: list[dict[str, int]] = []
        self._lock = threading.Lock()
        super().__init__(threads)
        self._db.executescript(SCHEMA)
        if (self.root / "blocks").is_dir():
            self._import_block_files()

    @property
    def location(self) -> str:
        return str(self.root)

    # --- the index --------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (the pool's threads read blocks in parallel)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.root / "index.sqlite", timeout=60, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.sync else 'NORMAL'}")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def _locate(self, cid: str) -> tuple[str, int, int] | None:
        return self._db.execute("SELECT pack, offset, size FROM blocks WHERE cid = ?", (cid,)).fetchone()

    def close(self) -> None:
        super().close()
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
            for fds in self._fd_caches:
                _close_all(fds)

    # --- blocks -----------------------------------------------------------------------------

    def _pack_fd(self, pack: str) -> int:
        """An open descriptor of a pack, cached per thread: a thread closes only its own, so
        none is closed under another thread's read."""
        fds = getattr(self._local, "fds", None)
        if fds is None:
            fds = self._local.fds = {}
            with self._lock:
                self._fd_caches.append(fds)
        fd = fds.get(pack)
        if fd is None:
            if len(fds) >= 64:  # some may be packs that gc has deleted since
                _close_all(fds)
            fd = fds[pack] = os.open(self.root / "packs" / pack, os.O_RDONLY)
        return fd

    def _read(self, name: str) -> bytes:
        for attempt in (1, 2):  # a pack rewritten by gc in another process: look it up again
            where = self._locate(name)
            if where is None:
                raise NotFound(f"no block {name} in the local store", "cid")
            pack, offset, size = where
            try:
                data = os.pread(self._pack_fd(pack), size, offset)
            except FileNotFoundError:
                continue
            if len(data) == size or attempt == 2:  # still short: verification refuses it
                return data
        raise NotFound(f"block {name}: its pack {pack} is gone", "cid")

    def block(self, cid: str | CID) -> bytes:
        parsed = cid if isinstance(cid, CID) else CID.parse(cid)
        name = str(parsed)
        data = self._read(name)
        if not parsed.verify(data):
            target = self.root / "quarantine" / f"{name}.{uuid.uuid4().hex[:8]}"
            target.write_bytes(data)
            self._db.execute("DELETE FROM blocks WHERE cid = ?", (name,))
            metrics.STORE_QUARANTINED.inc(backend=self.backend)
            raise CorruptBlock(f"block {name} does not match its CID: a copy is in {target}", "cid")
        metrics.STORE_BYTES_OUT.inc(len(data), backend=self.backend)
        return data

    def block_size(self, cid: str) -> int:
        where = self._locate(str(cid))
        if where is None:
            raise NotFound(f"no block {cid} in the local store", "cid")
        return where[2]

    def has_block(self, cid: str) -> bool:
        return self._locate(str(cid)) is not None

    # --- files (the rest is in BlockStore) -----------------------------------------------

    def _put_stream(self, source) -> str:
        # Chunks are hashed ahead on the pool's threads while this thread lays out the tree and
        # appends each new block to one pack file.
        return str(self._write_pack(lambda emit: build(hashed(chunked(source), self._pool), emit)[0]))

    def put_node(self, block: bytes) -> str:
        cid = CID.of(DAG_PB, block)
        self._write_pack(lambda emit: emit(cid, block))
        metrics.STORE_BYTES_IN.inc(len(block), backend=self.backend)
        return str(cid)

    def _write_pack(self, produce, replace: bool = False):
        """Run `produce(emit)`, appending every block it emits that the store lacks (every
        block, with `replace`) to a new pack; index them all at once. Returns what `produce`
        returns."""
        tmp = self.root / "tmp" / f"{os.getpid()}.{uuid.uuid4().hex}.pack"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        rows: list[tuple[str, str, int, int]] = []
        seen: set[str] = set()
        position = flushed = 0
        pack = tmp.name.split(".", 1)[1]

        def emit(cid: CID, block) -> None:
            nonlocal position, flushed
            name = str(cid)
            if name in seen or (not replace and self._locate(name) is not None):
                return
            seen.add(name)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
            rows.append((name, pack, position, len(block)))
            position += len(block)
            if self.sync and _sync_file_range is not None and position - flushed >= WRITEBACK_EVERY:
                # Hand what is written so far to the disk now, so the fsync at the end waits
                # for the last few MB instead of the whole pack.
                _sync_file_range(fd, flushed, position - flushed, SYNC_FILE_RANGE_WRITE)
                flushed = position

        try:
            result = produce(emit)
            if self.sync and rows:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        if not rows:
            tmp.unlink()
            return result
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # gc takes this lock too: it never sees the pack unindexed
        try:
            os.replace(tmp, self.root / "packs" / pack)
            if self.sync:  # the rename is durable before the index says the pack is there
                self._fsync_dir(self.root / "packs")
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            db.executemany(f"{verb} INTO blocks VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            (self.root / "packs" / pack).unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
            raise
        return result

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _import_block_files(self) -> None:
        """A store made by PRSM before packs (one file a block under `blocks/`, pins as files
        under `pins/`): its verified blocks move into one pack, its pins into the index."""
        old = self.root / "blocks"
        files = [path for folder in old.iterdir() for path in folder.iterdir()]

        def produce(emit):
            for path in files:
                cid, data = CID.parse(path.name), path.read_bytes()
                if cid.verify(data):
                    emit(cid, data)

        self._write_pack(produce)
        pins = self.root / "pins"
        if pins.is_dir():
            self._db.executemany("INSERT OR IGNORE INTO pins VALUES (?)", [(p.name,) for p in pins.iterdir()])
            for path in pins.iterdir():
                path.unlink()
            pins.rmdir()
        for path in files:
            path.unlink()
        for folder in old.iterdir():
            folder.rmdir()
        old.rmdir()

    # --- pins and garbage collection --------------------------------------------------------

    def pin(self, cid: str) -> None:
        name = str(CID.parse(cid))
        if not self.has(name):
            raise NotFound(f"cannot pin {name}: not all of its blocks are in the store", "cid")
        self._db.execute("INSERT OR IGNORE INTO pins VALUES (?)", (name,))

    def unpin(self, cid: str) -> None:
        name = str(CID.parse(cid))
        if self._db.execute("DELETE FROM pins WHERE cid = ?", (name,)).rowcount == 0:
            raise NotFound(f"{name} is not pinned", "cid")

    def pins(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT cid FROM pins ORDER BY cid")]

    def gc(self, grace_s: float = 0.0) -> dict:
        """Drop every block no pin reaches, delete packs with no block left, rewrite packs whose
        live blocks are under half their size, and remove temporary files of dead processes.
        With `grace_s`, blocks in packs written less than that long ago stay, pinned or not: an
        upload is put first and pinned after, so a scheduled gc beside a running app (prsm/ops.py)
        must not take the blocks of a put whose pin has not come yet. Returns what was removed."""
        keep: set[str] = set()
        for name in self.pins():
            keep.update(self._blocks_of(CID.parse(name)))
        cutoff = time.time() - grace_s
        young = {p.name for p in (self.root / "packs").iterdir() if grace_s and p.stat().st_mtime > cutoff}
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            dead = [
                (cid, size)
                for cid, pack, size in db.execute("SELECT cid, pack, size FROM blocks")
                if cid not in keep and pack not in young
            ]
            db.executemany("DELETE FROM blocks WHERE cid = ?", [(cid,) for cid, _ in dead])
            live = dict(db.execute("SELECT pack, sum(size) FROM blocks GROUP BY pack").fetchall())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for path in (self.root / "packs").iterdir():
            if path.name not in live:
                path.unlink()  # nothing left (or never indexed: a crash between write and index)
            elif live[path.name] * 2 < path.stat().st_size:
                self._rewrite(path.name)
        for path in (self.root / "tmp").iterdir():  # named <pid>.<random>.pack while written
            pid = path.name.split(".", 1)[0]
            if not (pid.isdigit() and _alive(int(pid))):
                path.unlink()
        _close_all(getattr(self._local, "fds", {}))  # packs deleted above may be open here
        return {
            "removed_blocks": len(dead),
            "freed_bytes": sum(size for _, size in dead),
            "kept_blocks": len(keep),
        }

    def _rewrite(self, pack: str) -> None:
        """Copy a pack's live blocks into a new pack, re-point them in one transaction, then
        delete the old pack (compaction). Readers holding the old pack open still read it."""
        rows = self._db.execute("SELECT cid FROM blocks WHERE pack = ? ORDER BY offset", (pack,)).fetchall()
        blocks = [(CID.parse(cid), self.block(cid)) for (cid,) in rows]
        self._write_pack(lambda emit: [emit(cid, data) for cid, data in blocks], replace=True)
        (self.root / "packs" / pack).unlink()


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
