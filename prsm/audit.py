"""The audit trail: an append-only record of every state-changing request (POST, PUT, PATCH,
DELETE) made with a valid key: when, which key (its id, never the secret) and account, the action
(method and route), the object (the request's path) and the outcome (the HTTP status).

The ingress records each one as its answer goes out (prsm/api/auth.py) and writes them in batches
off the event loop (every `FLUSH_S`, or sooner when `BATCH` are waiting), so the hot path pays
for a list append. Nothing in PRSM updates or deletes a row. A process that dies loses at most
the last `FLUSH_S` of its records; on PostgreSQL an operator can also revoke UPDATE and DELETE on
the table from PRSM's role. Read it with `prsm audit` or `GET /v1/audit` (operators).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from prsm.db.engine import Database
from prsm.db.models import AuditRecord, iso_utc, utcnow

AUDIT = AuditRecord.__table__
FLUSH_S = 0.5
BATCH = 200
MAX_PENDING = 100_000  # past this (the database is gone), the oldest are dropped, counted


@dataclass(frozen=True)
class Entry:
    key_id: str
    account: str
    action: str  # "POST /v1/models/{model_id}"
    object: str  # the path asked for
    status: int
    at: datetime


class AuditLog:
    def __init__(self, db: Database):
        self._db = db
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._flusher: asyncio.Task | None = None
        self.dropped = 0

    def record(self, key_id: str, account: str, method: str, route: str, path: str, status: int) -> None:
        row = {"at": utcnow(), "key_id": key_id, "account": account, "action": f"{method} {route}"[:200],
               "object": path[:500], "status": status}  # fmt: skip
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(0)
                self.dropped += 1
            self._pending.append(row)
        if self._flusher is None or self._flusher.done():
            with contextlib.suppress(RuntimeError):  # no running loop: `flush` writes them
                self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            written = await asyncio.to_thread(self.flush)
            if not written and not self._pending:
                return

    def flush(self) -> int:
        """Write what is pending; returns how many rows. Blocking. A flush already writing
        elsewhere finishes first, so every record made before this call is written when it returns."""
        with self._writing:
            with self._lock:
                rows, self._pending = self._pending, []
            for start in range(0, len(rows), BATCH * 10):
                with self._db.writer.begin() as conn:
                    conn.execute(AUDIT.insert(), rows[start : start + BATCH * 10])
        return len(rows)

    def read(
        self,
        account: str | None = None,
        key_id: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[dict]:
        """Records newest first, filtered; page with `before` (an id)."""
        query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        if account is not None:
            query = query.where(AUDIT.c.account == account)
        if key_id is not None:
            query = query.where(AUDIT.c.key_id == key_id)
        if before is not None:
            query = query.where(AUDIT.c.id < before)
        with self._db.engine.connect() as conn:
            return [
                {
                    "id": r.id,
                    "at": iso_utc(r.at),
                    "key_id": r.key_id,
                    "account": r.account,
                    "action": r.action,
                    "object": r.object,
                    "status": r.status,
                }  # fmt: skip
                for r in conn.execute(query)
            ]
