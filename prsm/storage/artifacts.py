"""Provenance of what PRSM stores by CID: kind, size, creator account, parent CIDs, licence.

An artifact is registered only once its bytes are in the store (all blocks present); its
parents must be registered artifacts, so a provenance chain never points at nothing. Registering
the same CID again is a no-op that returns the first record (content addressing: same bytes, same
artifact), unless it would change the record, which is refused.
"""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import AsyncIterator
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from prsm.db.engine import Database
from prsm.db.models import Artifact, iso_utc
from prsm.errors import ArtifactConflict, InvalidInput, NotFound, TooLarge
from prsm.storage.base import BlockStore
from prsm.storage.cid import CID


class ArtifactKind(StrEnum):
    MODEL = "model"  # a model folder (weights, config, tokenizer)
    DATASET = "dataset"  # prompts, or a teacher's answers to them
    TRACE = "trace"  # a session's trace, exported


class Artifacts:
    def __init__(self, db: Database, store: BlockStore):
        self._sessions = db.orm
        self.store = store

    def register(
        self, cid: str, kind: ArtifactKind | str, creator: str, parents: list[str] = (), licence: str | None = None,
        name: str | None = None,
    ) -> dict:  # fmt: skip
        cid = str(CID.parse(cid))
        try:
            kind = ArtifactKind(kind)
        except ValueError:
            raise InvalidInput(f"kind must be one of {', '.join(ArtifactKind)}", "kind") from None
        parents = [str(CID.parse(p)) for p in parents]
        try:
            size = self.store.stat(cid)["bytes"]
        except NotFound:
            raise NotFound(f"{cid} is not (wholly) in the store: put it first", "cid") from None
        row = {"cid": cid, "kind": str(kind), "size": size, "creator": creator, "parents": parents,
               "licence": licence, "name": name}  # fmt: skip
        with self._sessions.begin() as s:
            known = set(s.scalars(select(Artifact.cid).where(Artifact.cid.in_(parents))))
            missing = [p for p in parents if p not in known]
            if missing:
                raise InvalidInput(f"parent {missing[0]} is not a registered artifact", "parents")
            existing = s.get(Artifact, cid)
            if existing is None:
                s.add(Artifact(**row))
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    existing = s.get(Artifact, cid)
        if existing is not None:
            current = view(existing)
            if any(current[k] != row[k] for k in ("kind", "creator", "parents", "licence")):
                raise ArtifactConflict(f"{cid} is registered already, with other provenance", "cid")
            return current
        return self.get(cid)

    def get(self, cid: str) -> dict:
        cid = str(CID.parse(cid))
        with self._sessions() as s:
            row = s.get(Artifact, cid)
            if row is None:
                raise NotFound(f"no artifact {cid}", "cid")
            return view(row)

    def find(self, name: str, kind: str | None = None) -> dict | None:
        """The first artifact registered under `name` (and `kind`), or None."""
        query = select(Artifact).where(Artifact.name == name)
        if kind is not None:
            query = query.where(Artifact.kind == kind)
        with self._sessions() as s:
            row = s.scalars(query.order_by(Artifact.created_at).limit(1)).first()
            return view(row) if row is not None else None

    def used_by(self, account: str) -> int:
        """Bytes of the artifacts `account` created (what counts against its storage quota)."""
        with self._sessions() as s:
            return int(
                s.scalar(select(func.coalesce(func.sum(Artifact.size), 0)).where(Artifact.creator == account))
            )

    async def upload(
        self, chunks: AsyncIterator[bytes], limit: int, over: str | None = None, **provenance
    ) -> dict:  # fmt: skip
        """Stream request chunks into the store (never held whole), then register. Over `limit`
        bytes (`over` says whose limit): 413, nothing registered, and nothing of it stays on
        disk (the local store deletes the pack it was writing; an IPFS node keeps unpinned
        blocks until its own gc)."""
        pipe: queue.Queue = queue.Queue(maxsize=8)

        class Reader:
            def __init__(self):
                self.buf, self.done = b"", False

            def read(self, size: int = -1) -> bytes:
                while not self.done and (size < 0 or len(self.buf) < size):
                    chunk = pipe.get()
                    if chunk is ABORT:  # refused: the store drops what it wrote of it
                        raise UploadAborted("the upload was refused or cut off")
                    if chunk is None:
                        self.done = True
                    else:
                        self.buf += chunk
                size = len(self.buf) if size < 0 else size
                out, self.buf = self.buf[:size], self.buf[size:]
                return out

        putting = asyncio.create_task(asyncio.to_thread(self.store.put, Reader()))
        received = 0
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise TooLarge(over or f"the upload is over {limit} bytes", "body")
                if chunk:
                    await asyncio.to_thread(pipe.put, chunk)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(pipe.put, ABORT))
            await asyncio.gather(putting, return_exceptions=True)
            raise
        await asyncio.to_thread(pipe.put, None)  # end of stream
        cid = await putting
        record = await asyncio.to_thread(self.register, cid, **provenance)
        await asyncio.to_thread(self.store.pin, cid)
        return record


ABORT = object()


class UploadAborted(Exception):
    """Raised inside the store's writer when an upload is refused mid-stream."""


def view(row: Artifact) -> dict:
    return {"cid": row.cid, "kind": row.kind, "size": row.size, "creator": row.creator,
            "parents": list(row.parents or []), "licence": row.licence, "name": row.name,
            "created_at": iso_utc(row.created_at)}  # fmt: skip


def canonical_json(document: dict) -> bytes:
    """One byte string per document (sorted keys, no spaces): the same trace, the same CID."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
