"""Whether an account's sessions may feed the learning loop's data sets (prsm/loop.py).

Each account chooses (`PUT /v1/accounts/{id}/data-sharing`); an account that has not chosen gets
the operator's default (`PRSM_DATA_SHARING_DEFAULT`: on, as on the development stack; an
operator who needs consent first sets it off). A data set is built only from the sessions of
accounts that allow it at the time it is built.
"""

from __future__ import annotations

from sqlalchemy import select

from prsm.db.engine import Database
from prsm.db.models import DataSharing, utcnow

SHARING = DataSharing.__table__


def allowed(db: Database, account: str, default: bool) -> bool:
    with db.engine.connect() as conn:
        found = conn.execute(select(SHARING.c.allowed).where(SHARING.c.account_id == account)).scalar()
    return default if found is None else bool(found)


def choose(db: Database, account: str, allow: bool) -> None:
    with db.writer.begin() as conn:
        if conn.execute(select(SHARING.c.account_id).where(SHARING.c.account_id == account)).first():
            conn.execute(
                SHARING.update()
                .where(SHARING.c.account_id == account)
                .values(allowed=allow, updated_at=utcnow())
            )
        else:
            conn.execute(SHARING.insert().values(account_id=account, allowed=allow, updated_at=utcnow()))


def excluded(db: Database, accounts: set[str], default: bool) -> set[str]:
    """Those of `accounts` whose sessions may not be used."""
    if not accounts:
        return set()
    with db.engine.connect() as conn:
        chosen = dict(
            conn.execute(
                select(SHARING.c.account_id, SHARING.c.allowed).where(SHARING.c.account_id.in_(accounts))
            ).all()
        )
    return {a for a in accounts if not chosen.get(a, default)}
