"""This node's federation record in its database (`chain_state`, key `federation:node`): what
`prsm federation announce` wrote (operator address, endpoint, catalogue CID, the challenge that
proves the endpoint reaches this node). Read by the public `GET /v1/federation/node`; no web3
here, so the app loads none."""

from __future__ import annotations

from sqlalchemy import delete, select

from prsm.db.engine import Database
from prsm.db.models import ChainState, utcnow

STATE = ChainState.__table__
NODE_KEY = "federation:node"
NODE_PATH = "/v1/federation/node"


def record(db: Database) -> dict | None:
    with db.engine.connect() as conn:
        return conn.execute(select(STATE.c.value).where(STATE.c.key == NODE_KEY)).scalar()


def save_record(db: Database, value: dict) -> None:
    with db.writer.begin() as conn:
        if conn.execute(select(STATE.c.key).where(STATE.c.key == NODE_KEY)).first() is None:
            conn.execute(STATE.insert(), [{"key": NODE_KEY, "value": value}])
        else:
            conn.execute(
                STATE.update().where(STATE.c.key == NODE_KEY).values(value=value, updated_at=utcnow())
            )


def forget_record(db: Database) -> None:
    with db.writer.begin() as conn:
        conn.execute(delete(STATE).where(STATE.c.key == NODE_KEY))
