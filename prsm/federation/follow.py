"""Following the node registry: this node's view of who is in the network, kept in its database.

`sync` reads the registry's events from where the last sync stopped (a cursor in `chain_state`,
so a restarted node resumes where it was and reads no block twice; the first sync starts at the
registry's deployment, PRSM_FEDERATION_START_BLOCK) up to the newest block with
PRSM_CHAIN_CONFIRMATIONS, in chain order: an announcement adds or updates a peer, a leave removes
it, this node's own announcements are skipped. Then every peer whose catalogue is new is fetched
by CID and checked (prsm/federation/catalogue.py): `ok` with the document kept, or
`bad_catalogue` with the reason (a catalogue that cannot be read now is tried again next sync).
The peers and the cursor are written in one transaction, so a crash mid-sync repeats it whole.
`follow` is a sync and then the offer of the peers' models to this node's router
(prsm/federation/market.py): what `prsm federation sync` and the scheduled job run.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from prsm.db.models import FederationPeer, LedgerAccount, utcnow
from prsm.errors import InvalidInput, PRSMError
from prsm.federation import catalogue, market
from prsm.federation.registry import NodeRegistry
from prsm.ftns.ledger import peer_account

PEERS, ACCOUNTS = FederationPeer.__table__, LedgerAccount.__table__


def cursor_key(registry_address: str) -> str:
    return f"federation:cursor:{registry_address.lower()}"


def sync(nodes: NodeRegistry, store, confirmations: int = 1) -> dict:
    """Bring the peers up to the chain's newest confirmed block; what changed."""
    where = nodes.address(deploy=False)
    key = cursor_key(where["registry"])
    db = nodes.db
    saved = nodes.contracts.state(key)
    start = saved["next_block"] if saved else where["block"]
    head = nodes.chain.w3.eth.block_number - (max(confirmations, 1) - 1)
    me = nodes.chain.operator.address.lower()
    changes: dict[str, tuple] = {}  # operator -> ("announce", endpoint, cid, block) | ("leave",)
    if head >= start:
        contract = nodes.chain.contract("PRSMNodeRegistry", where["registry"])
        events = [
            *nodes.contracts.logs(contract.events.NodeAnnounced, start, None, to_block=head),
            *nodes.contracts.logs(contract.events.NodeLeft, start, None, to_block=head),
        ]
        for e in sorted(events, key=lambda e: (e.blockNumber, e.logIndex)):
            operator = e.args.operator
            if operator.lower() == me:
                continue
            if e.event == "NodeLeft":
                changes[operator] = ("leave",)
            else:
                changes[operator] = ("announce", e.args.endpoint, e.args.catalogue, e.blockNumber)
    with db.engine.connect() as conn:
        known = {r.operator: r for r in conn.execute(select(PEERS))}
    rows, gone = [], []
    for operator, change in changes.items():
        if change[0] == "leave":
            gone.append(operator)
            continue
        _, endpoint, cid, block = change
        before = known.get(operator)
        same = before is not None and before.catalogue == cid and before.status != "pending"
        rows.append({"operator": operator, "endpoint": endpoint, "catalogue": cid, "block": block,
                     "status": before.status if same else "pending", "error": before.error if same else None,
                     "document": before.document if same else None})  # fmt: skip
    # peers whose catalogue is not read yet (new now, or unreadable last time)
    waiting = {r["operator"]: r for r in rows if r["status"] == "pending"}
    for r in known.values():
        if r.status == "pending" and r.operator not in changes:
            waiting[r.operator] = {c: getattr(r, c) for c in ("operator", "endpoint", "catalogue", "block",
                                                               "status", "error", "document")}  # fmt: skip
    fetched = {}
    for operator, r in waiting.items():
        try:
            doc = catalogue.fetch(store, r["catalogue"], operator)
            r.update(status="ok", error=None, document=doc.model_dump())
        except InvalidInput as exc:  # read, and not a catalogue of this operator: refused
            r.update(status="bad_catalogue", error=exc.message[:2000])
        except PRSMError as exc:  # not readable now (not found, a block that fails its CID): later
            r.update(status="pending", error=f"{type(exc).__name__}: {exc}"[:2000])
        fetched[operator] = r["status"]
    upserts = {r["operator"]: r for r in rows} | waiting
    with db.writer.begin() as conn:
        if gone:
            conn.execute(delete(PEERS).where(PEERS.c.operator.in_(gone)))
        for operator, r in upserts.items():
            conn.execute(delete(PEERS).where(PEERS.c.operator == operator))
            conn.execute(PEERS.insert().values(**r, updated_at=utcnow()))
        nodes.contracts.set_state(conn, key, {"next_block": max(head + 1, start)})
    return {"from_block": start, "to_block": head, "announced": sorted(o for o, c in changes.items() if c[0] != "leave"),
            "left": sorted(gone), "catalogues": fetched}  # fmt: skip


def peers(db) -> list[dict]:
    """The peers this node knows, by operator, with the balance of each one's account here
    (decimal base units): above zero this node owes the peer, below zero the peer owes it."""
    with db.engine.connect() as conn:
        rows = conn.execute(select(PEERS).order_by(PEERS.c.operator)).all()
        balances = dict(conn.execute(select(ACCOUNTS.c.id, ACCOUNTS.c.balance).where(
            ACCOUNTS.c.id.in_([peer_account(r.operator) for r in rows]))).all())  # fmt: skip
    return [
        {
            "operator": r.operator,
            "endpoint": r.endpoint,
            "catalogue": r.catalogue,
            "block": r.block,
            "status": r.status,
            "error": r.error,
            "models": [m["id"] for m in (r.document or {}).get("models", [])],
            "balance": str(balances.get(peer_account(r.operator), 0)),
        }  # fmt: skip
        for r in rows
    ]


def follow(nodes: NodeRegistry, store, registry, settings) -> dict:
    """Sync, then offer the peers' models here; what changed (the offer under "offered")."""
    done = sync(nodes, store, settings.chain_confirmations)
    done["offered"] = market.offer(
        registry, nodes.contracts.ledger, nodes.contracts, settings.federation_fee_bps
    )
    return done


def summary(done: dict) -> str:
    """One line for the operator: what a follow did."""
    catalogues = ", ".join(f"{o} {v}" for o, v in sorted(done["catalogues"].items()))
    offered = done.get("offered") or {}
    line = (f"blocks {done['from_block']}..{done['to_block']}: {len(done['announced'])} announced, "
            f"{len(done['left'])} left" + (f"; catalogues: {catalogues}" if catalogues else ""))  # fmt: skip
    if offered:
        line += (f"; peer models: {len(offered['added'])} added, {len(offered['changed'])} changed, "
                 f"{len(offered['removed'])} removed")  # fmt: skip
        line += "".join(f"; {o} left out: {why}" for o, why in sorted(offered["left_out"].items()))
    return line
