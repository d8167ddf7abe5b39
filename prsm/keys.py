"""API keys: who is asking. Each key is bound to one ledger account and a role (prsm/types.py:
KeyRole); the account it names is the one that pays and owns, whatever a request body says.

A key reads `prsm_<id>_<secret>`. The id (12 hex characters) names the key in lists, logs and
the audit trail; the secret (32 random bytes, base64url) is shown once, when the key is made, and
only its SHA-256 is stored. A fast hash is right for a random 256-bit secret: there is no
dictionary to try, unlike a password a person chose. Secrets are compared in constant time.

Keys may expire, are revoked (kept, for the record) and rotated: a rotation makes a new key for
the same account and role and lets the old one live on for a grace period, so running clients
can switch without an outage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from prsm.db.engine import Database
from prsm.db.models import ApiKey, iso_utc, utcnow
from prsm.errors import InvalidInput, Unauthorized, UnknownKey
from prsm.ftns.ledger import AccountKind, Ledger
from prsm.types import ACCOUNT_ID, NO_LIMITS, KeyLimits, KeyRole, Principal

KEYS = ApiKey.__table__
TOKEN = re.compile(r"^prsm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# A key row is read again at most this often by a process that authenticates with it: a key
# revoked or rotated elsewhere stops working within this time (at once in the process that did it).
CACHE_S = 2.0


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive (they are stored in UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=utcnow().tzinfo)


@dataclass(frozen=True)
class KeyRecord:
    """A key as anyone may see it: everything but the secret."""

    id: str
    account: str
    role: KeyRole
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None
    limits: KeyLimits = NO_LIMITS

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict:
        return {
            "id": self.id,
            "account": self.account,
            "role": str(self.role),
            "name": self.name,
            "created_at": iso_utc(self.created_at),
            "expires_at": iso_utc(self.expires_at),
            "revoked_at": iso_utc(self.revoked_at),
            "replaced_by": self.replaced_by,
            "limits": self.limits.public(),
            "active": self.active(utcnow()),
        }


def _record(row) -> KeyRecord:
    limits = KeyLimits(
        row.rpm, row.tpm, row.max_concurrent, row.budget, row.budget_period_s or NO_LIMITS.budget_period_s
    )
    return KeyRecord(
        row.id, row.account_id, KeyRole(row.role), row.name, _aware(row.created_at),
        _aware(row.expires_at), _aware(row.revoked_at), row.replaced_by, limits,
    )  # fmt: skip


def check_limits(limits: KeyLimits) -> KeyLimits:
    """Limits as given, or InvalidInput naming the field."""
    for field in ("rpm", "tpm", "concurrent", "budget"):
        value = getattr(limits, field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidInput("a limit is a whole number, 0 or more", field)
    if limits.rpm is not None and limits.rpm > 10**7 or limits.tpm is not None and limits.tpm > 10**12:
        raise InvalidInput("a limit that high is no limit: leave it out", "rpm" if limits.rpm else "tpm")
    if not 60 <= limits.budget_period_s <= 366 * 86400:
        raise InvalidInput("the budget period is 1 minute to 366 days", "budget_period_s")
    return limits


class ApiKeys:
    def __init__(self, db: Database, ledger: Ledger):
        self._db = db
        self._ledger = ledger
        self._cache: dict[str, tuple[float, str, KeyRecord]] = {}  # id -> (read at, hash, record)
        self._lock = threading.Lock()

    # --- making and managing keys -----------------------------------------------------------

    def create(
        self, account: str, role: KeyRole | str = KeyRole.USER, expires_at: datetime | None = None,
        name: str | None = None, limits: KeyLimits = NO_LIMITS,
    ) -> tuple[str, KeyRecord]:  # fmt: skip
        """A new key for `account` (opened if new, able to pay): (the key, shown only now; its record)."""
        if not isinstance(account, str) or not ACCOUNT_ID.match(account):
            raise InvalidInput(f"{account!r} is not an account id", "account")
        try:
            role = KeyRole(role)
        except ValueError:
            raise InvalidInput(f"a role is one of {', '.join(KeyRole)}", "role") from None
        if expires_at is not None and _aware(expires_at) <= utcnow():
            raise InvalidInput("the expiry is in the past", "expires_at")
        if name is not None and len(name) > 128:
            raise InvalidInput("a key's name has at most 128 characters", "name")
        check_limits(limits)
        self._ledger.open_account(
            account, AccountKind.OPERATOR if role == KeyRole.OPERATOR else AccountKind.USER
        )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = {"id": key_id, "account_id": account, "role": str(role), "secret_hash": _hash(secret),
               "name": name, "created_at": utcnow(), "expires_at": expires_at, "rpm": limits.rpm,
               "tpm": limits.tpm, "max_concurrent": limits.concurrent, "budget": limits.budget,
               "budget_period_s": limits.budget_period_s}  # fmt: skip
        with self._db.writer.begin() as conn:
            conn.execute(KEYS.insert(), [row])
        return f"prsm_{key_id}_{secret}", self.get(key_id)

    def get(self, key_id: str) -> KeyRecord:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(KEYS).where(KEYS.c.id == key_id)).first()
        if row is None:
            raise UnknownKey(f"no key {key_id!r}", "key_id")
        return _record(row)

    def list(self, account: str | None = None) -> list[KeyRecord]:
        """Keys, newest first: of one account, or all of them."""
        query = select(KEYS).order_by(KEYS.c.created_at.desc(), KEYS.c.id)
        if account is not None:
            query = query.where(KEYS.c.account_id == account)
        with self._db.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key now (a key revoked already stays as it was)."""
        with self._db.writer.begin() as conn:
            conn.execute(
                update(KEYS)
                .where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        self._forget(key_id)
        return self.get(key_id)

    def rotate(self, key_id: str, grace_s: float) -> tuple[str, KeyRecord]:
        """A new key for the same account and role; the old one expires after `grace_s`."""
        if not 0 <= grace_s <= 30 * 86400:
            raise InvalidInput("the grace period is 0 to 30 days", "grace")
        old = self.get(key_id)
        if not old.active(utcnow()):
            raise InvalidInput(f"key {key_id} is revoked or expired: make a new one", "key_id")
        token, new = self.create(old.account, old.role, old.expires_at, old.name, old.limits)
        ends = utcnow() + timedelta(seconds=grace_s)
        ends = ends if old.expires_at is None else min(ends, old.expires_at)
        with self._db.writer.begin() as conn:
            conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(expires_at=ends, replaced_by=new.id))
        self._forget(key_id)
        return token, new

    # --- authentication ---------------------------------------------------------------------

    def cached(self, token: str | None) -> Principal | None:
        """The principal of a key this process read recently (no database), or None: then call
        `authenticate`."""
        match = TOKEN.match(token or "")
        entry = self._cache.get(match[1]) if match else None
        if entry is None or time.monotonic() - entry[0] > CACHE_S:
            return None
        return self._check(match[2], entry[1], entry[2])

    def authenticate(self, token: str | None) -> Principal:
        """The principal a key stands for; Unauthorized if it is missing, malformed, unknown,
        wrong, expired or revoked (one message for all: nothing to probe with)."""
        match = TOKEN.match(token or "")
        if match is None:
            raise Unauthorized(
                "missing or malformed API key: send `Authorization: Bearer prsm_...`" if not token
                else "invalid API key", "authorization",
            )  # fmt: skip
        with self._db.engine.connect() as conn:
            row = conn.execute(select(KEYS).where(KEYS.c.id == match[1])).first()
        if row is None:
            raise Unauthorized("invalid API key", "authorization")
        with self._lock:
            self._cache[row.id] = (time.monotonic(), row.secret_hash, _record(row))
        return self._check(match[2], row.secret_hash, _record(row))

    def _check(self, secret: str, secret_hash: str, record: KeyRecord) -> Principal:
        if not hmac.compare_digest(_hash(secret), secret_hash) or not record.active(utcnow()):
            raise Unauthorized("invalid API key", "authorization")
        return Principal(record.id, record.account, record.role, record.limits)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)


DEV_ACCOUNT = "dev"


def provision(keys: ApiKeys, path: Path, operator_account: str) -> dict[str, str]:
    """The local stack's keys: an operator key (the operator's account) and a development key
    (account `dev`, role owner: it may ask, pay and register models). Made once and written to
    `path`, readable by its owner only; made again if a key there no longer works."""
    try:
        saved = json.loads(path.read_text())
        for token in (saved["operator"], saved["dev"]):
            keys.authenticate(token)
        return saved
    except (OSError, ValueError, KeyError, TypeError, Unauthorized):
        pass
    made = {
        "operator": keys.create(operator_account, KeyRole.OPERATOR, name="local operator (prsm up)")[0],
        "dev": keys.create(DEV_ACCOUNT, KeyRole.OWNER, name="development (prsm up)")[0],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(made, f, indent=2)
    os.replace(partial, path)
    return made
