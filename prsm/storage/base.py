"""What every block store shares: files as DAGs of verified blocks, streamed in order.

A store implements `block` (fetch one block and verify it against its CID), `has_block`,
`_put_stream`, and pins; `put`, `get`, `read`, `has` and `ls` are built on them here, so the
local store and the IPFS backend behave the same (tests/storage_checks.py runs on both).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prsm import metrics
from prsm.errors import CorruptBlock, InvalidInput, NotFound
from prsm.storage.cid import (
    CID,
    DAG_PB,
    DIRECTORY,
    dag_pb_entries,
    dag_pb_links,
    dag_pb_node,
    unixfs_directory,
    unixfs_type,
)


class _Counted:
    """A binary stream that counts the bytes read from it (for the store's metrics)."""

    def __init__(self, stream):
        self._stream, self.count = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


class BlockStore:
    backend = "none"  # the `backend` label of the store's metrics

    def __init__(self, threads: int | None = None):
        # Hashing and I/O release the GIL: blocks are hashed, written, fetched and verified on
        # several threads at once, and handed out in order.
        self._pool = ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1))

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def location(self) -> str:
        """Where the blocks are: a folder, or an IPFS node's API."""
        raise NotImplementedError

    def block(self, cid: str | CID) -> bytes:
        raise NotImplementedError

    def has_block(self, cid: str) -> bool:
        raise NotImplementedError

    def _put_stream(self, source) -> str:
        raise NotImplementedError

    def put_node(self, block: bytes) -> str:
        """Store one dag-pb block; return its CID."""
        raise NotImplementedError

    def pins(self) -> list[str]:
        raise NotImplementedError

    def block_size(self, cid: str) -> int:
        raise NotImplementedError

    def put(self, data: bytes | os.PathLike | str | object) -> str:
        """Store bytes, a file path or a binary stream; return its CID (Kubo's, CIDv1)."""
        if isinstance(data, bytes | bytearray | memoryview):
            cid = self._put_stream(data)
            metrics.STORE_BYTES_IN.inc(len(data), backend=self.backend)
            return cid
        if isinstance(data, str | os.PathLike):
            with open(data, "rb") as f:
                cid = self._put_stream(f)
            metrics.STORE_BYTES_IN.inc(os.path.getsize(data), backend=self.backend)
            return cid
        counted = _Counted(data)
        cid = self._put_stream(counted)
        metrics.STORE_BYTES_IN.inc(counted.count, backend=self.backend)
        return cid

    def put_dir(self, folder: os.PathLike | str) -> str:
        """Store a folder (its files and subfolders) as a UnixFS directory; return its CID, the
        one `ipfs add -r --cid-version=1` gives the same folder."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInput(f"{folder} is not a folder", "path")
        links = []
        for child in sorted(folder.iterdir(), key=lambda p: p.name.encode()):  # dag-pb order
            if child.is_symlink() or not (child.is_file() or child.is_dir()):
                raise InvalidInput(f"{child}: only plain files and folders are stored", "path")
            cid = self.put_dir(child) if child.is_dir() else self.put(child)
            links.append((CID.parse(cid), self.stat(cid)["bytes"], child.name))
        return self.put_node(dag_pb_node(links, unixfs_directory()))

    def get_dir(self, cid: str, target: os.PathLike | str) -> None:
        """Write a stored folder under `target` (created), every block verified on the way."""
        root = CID.parse(cid)
        block = self.block(root)
        if not _is_directory(root, block):
            raise InvalidInput(f"{root} is a file, not a folder", "cid")
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        for name, child in dag_pb_entries(block):
            if not name or name in (".", "..") or "/" in name or "\0" in name:
                raise CorruptBlock(f"folder {root} has an entry named {name!r}: refused", "cid")
            child_block = self.block(child)
            if _is_directory(child, child_block):
                self.get_dir(str(child), target / name)
                continue
            with open(target / name, "wb") as f:
                for chunk in self._walk(child, child_block):
                    f.write(chunk)

    def get(self, cid: str) -> Iterator[bytes]:
        """The file's bytes, chunk by chunk, each verified against its CID before it is yielded.
        The root is read (and verified) before the first chunk: a missing or corrupt root
        fails at the call, not midway."""
        root = CID.parse(cid)
        first = self.block(root)
        if _is_directory(root, first):
            raise InvalidInput(f"{root} is a folder: fetch it with get_dir (prsm store get -o DIR)", "cid")
        return self._walk(root, first)

    def _walk(self, cid: CID, block: bytes) -> Iterator[bytes]:
        """Leaves in order; up to 16 leaves read and verified ahead on the pool's threads."""
        ahead: deque = deque()
        for leaf in self._leaves(cid, block):
            ahead.append(self._pool.submit(self.block, leaf) if leaf is not None else None)
            if len(ahead) >= 16:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def _leaves(self, cid: CID, block: bytes) -> Iterator[CID]:
        if cid.codec != DAG_PB:
            yield cid
            return
        for child in dag_pb_links(block):
            if child.codec == DAG_PB:
                yield from self._leaves(child, self.block(child))
            else:
                yield child

    def read(self, cid: str) -> bytes:
        return b"".join(self.get(cid))

    def has(self, cid: str) -> bool:
        """Whether every block of the file is here."""
        try:
            return all(self.has_block(name) for name in self._blocks_of(CID.parse(cid)))
        except NotFound:  # a missing inner node
            return False

    def _blocks_of(self, cid: CID) -> Iterator[str]:
        yield str(cid)
        if cid.codec == DAG_PB:
            for child in dag_pb_links(self.block(cid)):
                yield from self._blocks_of(child)

    def stat(self, cid: str) -> dict:
        """How many blocks a file has and their bytes; NotFound if any block is missing."""
        blocks = list(self._blocks_of(CID.parse(cid)))
        return {
            "cid": str(CID.parse(cid)),
            "blocks": len(blocks),
            "bytes": sum(self.block_size(b) for b in blocks),
        }

    def is_dir(self, cid: str) -> bool:
        root = CID.parse(cid)
        return _is_directory(root, self.block(root))

    def ls(self) -> list[dict]:
        """Pinned files with their sizes (bytes of all their blocks)."""
        return [self.stat(name) for name in self.pins()]


def _is_directory(cid: CID, block: bytes) -> bool:
    if cid.codec != DAG_PB:
        return False
    try:
        return unixfs_type(block) == DIRECTORY
    except ValueError as exc:
        raise CorruptBlock(f"{cid} is not a UnixFS node: {exc}", "cid") from exc
