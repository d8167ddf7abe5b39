"""The local block store, the embedded default: blocks as files named by CID, pins, GC.

Layout under the root: `blocks/<last 2 chars>/<cid>` (one file a block), `pins/<cid>` (an empty
file a recursive pin), `quarantine/` (blocks that failed verification), `tmp/`.

- Writes are atomic: a block is written to `tmp/` and renamed into place, so no reader ever sees
  a half-written block under its CID. `put` returns once the file system is synced (one syncfs,
  not an fsync a block; `sync=False` skips it for caches that can be refilled). After a power
  loss a block written just before may be torn on disk: it fails verification when read, is
  quarantined, and the next put of that content writes it again.
- A block that already exists (same size) is not written again.
- Every block read is verified against its CID before its bytes are used; one that does not
  match is moved to `quarantine/` and the read fails (CorruptBlock). `get` streams a file's
  chunks in order, each verified, so nothing unverified is ever returned.
- `gc` deletes every block not reachable from a pin.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import shutil
import uuid
from collections import deque
from pathlib import Path

from prsm.storage.base import BlockStore, CorruptBlock, NotFound
from prsm.storage.cid import CID, build, chunked, hashed

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _libc.syncfs  # noqa: B018 (Linux only)
except (OSError, AttributeError):
    _libc = None


class LocalStore(BlockStore):
    def __init__(self, root: Path, threads: int | None = None, sync: bool = True):
        self.root = Path(root)
        self.sync = sync
        for sub in ("blocks", "pins", "quarantine", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._shards = {p.name for p in (self.root / "blocks").iterdir()}
        self._tmp_seq = itertools.count()
        super().__init__(threads)

    # --- blocks -----------------------------------------------------------------------------

    def _path(self, cid: str) -> Path:
        return self.root / "blocks" / cid[-2:] / cid

    def put_block(self, cid: CID, block: bytes) -> None:
        """Write one block: to tmp/, then renamed into place (atomic). Not fsynced here: `put`
        syncs the file system once at the end, before it returns the CID."""
        name = str(cid)
        path = self._path(name)
        try:
            if path.stat().st_size == len(block):
                return  # already here (a torn copy of the right size would fail verification)
        except FileNotFoundError:
            pass
        if name[-2:] not in self._shards:
            path.parent.mkdir(exist_ok=True)
            self._shards.add(name[-2:])
        tmp = self.root / "tmp" / f"{os.getpid()}-{next(self._tmp_seq)}"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        try:
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)

    def _sync(self) -> None:
        """Make what was written durable: one syncfs of the store's file system (Linux), not one
        fsync a block (each fsync is a journal commit; a put of 100 MB makes 400 blocks)."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _libc is not None and _libc.syncfs(fd) == 0:
                return
            os.sync()
        finally:
            os.close(fd)

    def block(self, cid: str | CID) -> bytes:
        parsed = cid if isinstance(cid, CID) else CID.parse(cid)
        name = str(parsed)
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no block {name} in the local store", "cid") from None
        if not parsed.verify(data):
            target = self.root / "quarantine" / f"{name}.{uuid.uuid4().hex[:8]}"
            os.replace(self._path(name), target)
            raise CorruptBlock(f"block {name} does not match its CID: moved to {target}", "cid")
        return data

    def block_size(self, cid: str) -> int:
        try:
            return self._path(cid).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"no block {cid} in the local store", "cid") from None

    def has_block(self, cid: str) -> bool:
        return self._path(cid).exists()

    # --- files (the rest is in BlockStore) -----------------------------------------------

    def _put_stream(self, stream) -> str:
        writes: deque = deque()

        def emit(cid: CID, block: bytes) -> None:
            writes.append(self._pool.submit(self.put_block, cid, block))
            while len(writes) > 16:
                writes.popleft().result()

        try:
            root, _ = build(hashed(chunked(stream), self._pool), emit)
        finally:
            for write in writes:
                write.result()
        if self.sync:
            self._sync()
        return str(root)

    # --- pins and garbage collection --------------------------------------------------------

    def pin(self, cid: str) -> None:
        name = str(CID.parse(cid))
        if not self.has(name):
            raise NotFound(f"cannot pin {name}: not all of its blocks are in the store", "cid")
        (self.root / "pins" / name).touch()

    def unpin(self, cid: str) -> None:
        name = str(CID.parse(cid))
        try:
            (self.root / "pins" / name).unlink()
        except FileNotFoundError:
            raise NotFound(f"{name} is not pinned", "cid") from None

    def pins(self) -> list[str]:
        return sorted(p.name for p in (self.root / "pins").iterdir())

    def gc(self) -> dict:
        """Delete every block no pin reaches; return what was removed."""
        keep: set[str] = set()
        for name in self.pins():
            keep.update(self._blocks_of(CID.parse(name)))
        removed = freed = 0
        for folder in (self.root / "blocks").iterdir():
            for path in folder.iterdir():
                if path.name not in keep:
                    freed += path.stat().st_size
                    path.unlink()
                    removed += 1
        shutil.rmtree(self.root / "tmp", ignore_errors=True)  # leftovers of crashed writes
        (self.root / "tmp").mkdir(exist_ok=True)
        return {"removed_blocks": removed, "freed_bytes": freed, "kept_blocks": len(keep)}
