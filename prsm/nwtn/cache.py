"""The sub-task cache: a deterministic model's answer to an identical sub-task, given again.

What is cached: the answers of transformers models. Their decoding is greedy, so the same weights,
messages and budget give the same tokens (batched or alone: tests/integration/test_causal_lm.py).
Tools are not cached: a tool call costs about what a lookup does (a millisecond). Remote
endpoints and peer nodes are not: what answers there can change without this node knowing.

The key is the SHA-256 of the scope, the model's id and weights reference, the messages as they
are sent (the instruction with earlier results filled in, and the system prompt), the budget of
new tokens and the response format. A card pointed at other weights gets other keys, so it never
serves an answer of its old weights. The scope (PRSM_CACHE_SCOPE): `account` (the default) puts
the paying account in the key, so an answer is given again only to the account whose query made
it and a hit tells nothing about anyone else's questions; `global` shares answers between
accounts (more hits; but a hit, cheaper and marked in the trace, shows that someone asked the
same sub-task before).

Billing rule: a hit costs PRSM_CACHE_PRICE_BPS (default 2000, 20 %) of the model's price for the
entry's tokens, split like any charge of that model (owner, teacher's royalty, operator,
treasury): the owner's model made the answer once and is paid a share each time it is given
again, and the user pays a fifth of a fresh answer (the quote, at the full price, still bounds
it). A hit does not count as a call of the model (its calls, latency and breaker are untouched).

Entries older than PRSM_CACHE_TTL_S are not used (0 turns the cache off); the `gc` scheduled job
deletes them. Hits and misses are counted in `prsm_subtask_cache_total`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from prsm.db.engine import Database
from prsm.db.models import SubtaskCacheEntry, utcnow
from prsm.types import ModelCall, ModelCard, ModelKind, ModelOutput

ENTRIES = SubtaskCacheEntry.__table__


def cacheable(card: ModelCard) -> bool:
    return card.kind == ModelKind.TRANSFORMERS and bool(card.weights)


def key(card: ModelCard, call: ModelCall, account: str | None) -> str:
    """The entry's key (`account` None: shared between accounts)."""
    parts = [
        account or "*",
        card.id,
        card.weights,
        list(call.messages),
        call.max_new_tokens,
        call.response_format,
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def put_statement(dialect: str):
    """INSERT, ignoring a key another replica wrote first (the same answer), for executemany."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    stmt = insert(ENTRIES).values(
        key=bindparam("b_key"), model_id=bindparam("b_model"), result=bindparam("b_result"),
        tokens_in=bindparam("b_in"), tokens_out=bindparam("b_out"), created_at=bindparam("b_at"),
    )  # fmt: skip
    return stmt.on_conflict_do_nothing(index_elements=[ENTRIES.c.key])


def put(entry_key: str, model_id: str, output: ModelOutput) -> tuple[str, dict]:
    """The write that stores an answer (it rides with its sub-task's write)."""
    return ("cache_put", {"b_key": entry_key, "b_model": model_id, "b_result": output.text,
                          "b_in": output.tokens_in, "b_out": output.tokens_out, "b_at": utcnow()})  # fmt: skip


class SubtaskCache:
    def __init__(self, db: Database, ttl_s: float):
        self.db, self.ttl_s = db, ttl_s

    @property
    def on(self) -> bool:
        return self.ttl_s > 0

    def get(self, entry_key: str) -> ModelOutput | None:
        """The entry, if it is there and not expired. Blocking."""
        since = utcnow() - timedelta(seconds=self.ttl_s)
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(ENTRIES.c.result, ENTRIES.c.tokens_in, ENTRIES.c.tokens_out).where(
                    ENTRIES.c.key == entry_key, ENTRIES.c.created_at > since
                )
            ).first()
        return None if row is None else ModelOutput(row.result, row.tokens_in, row.tokens_out)

    def expire(self) -> int:
        """Delete the expired entries (all of them with the cache off); how many."""
        since = utcnow() - timedelta(seconds=self.ttl_s)
        with self.db.writer.begin() as conn:
            return conn.execute(delete(ENTRIES).where(ENTRIES.c.created_at <= since)).rowcount
