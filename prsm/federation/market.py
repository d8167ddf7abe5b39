"""Peers' models offered to this node's router: each model in a peer's checked catalogue becomes a
card of kind `peer` here, kept in step with the catalogue each time the registry is followed.

- Id `peer-<the first 16 hex digits of the peer's operator address>-<its model id>` (ids with the
  prefix cannot be registered by hand); a model whose id would be too long here is left out.
- Price: the peer's price plus this node's federation fee (PRSM_FEDERATION_FEE_BPS, rounded up),
  which is what this node's users pay; the peer is owed its own price for the tokens it counts
  (prsm/ftns/pricing.py `split`). The card keeps the peer's prices, kind, operator and chain.
- Owner: the peer's ledger account `peer:<address>`, opened here and linked to the peer's
  settlement contract, so this node's settlement epochs pay what it owes there, and what the
  peer's settlement pays this node is credited to the same account (netted both ways).
- Latency, health and quality are this node's own measurements of the card, never the peer's
  claims (the catalogue's are not copied).
- A peer that pays in another FTNS token or is on another chain is not offered; a peer that left
  the network, or whose catalogue no longer lists a model, loses its cards. Which capabilities
  may go to peers at all is the router's rule (PRSM_FEDERATION_CAPABILITIES, prsm/nwtn/route.py).
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from sqlalchemy import select

from prsm.db.models import FederationPeer
from prsm.errors import InvalidInput, ModelAlreadyExists
from prsm.federation.catalogue import Catalogue
from prsm.ftns.ledger import AccountKind, peer_account
from prsm.ftns.pricing import BPS
from prsm.types import MODEL_ID_PATTERN, PEER_MODEL_PREFIX, ModelCard, ModelKind

PEERS = FederationPeer.__table__
MODEL_ID = re.compile(MODEL_ID_PATTERN)
OFFERED_KINDS = frozenset({ModelKind.TRANSFORMERS, ModelKind.TOOL, ModelKind.OPENAI})


def card_id(operator: str, model_id: str) -> str:
    return f"{PEER_MODEL_PREFIX}{operator[2:18].lower()}-{model_id}"


def with_fee(price: int, fee_bps: int) -> int:
    return price + -(-price * fee_bps // BPS)


def cards_of(operator: str, endpoint: str, doc: Catalogue, fee_bps: int) -> list[ModelCard]:
    """The cards that offer a peer's catalogue here."""
    cards = []
    for m in doc.models:
        cid = card_id(operator, m.id)
        if m.kind not in OFFERED_KINDS or not MODEL_ID.match(cid):
            continue
        cards.append(
            ModelCard(
                id=cid,
                kind=ModelKind.PEER,
                description=m.description[:2000] or m.id,
                owner=peer_account(operator),
                licence=f"served by peer node {operator}",
                tags=tuple(m.tags[:32]),
                price_per_1k_tokens=with_fee(int(m.price_per_1k_tokens), fee_bps),
                price_per_call=with_fee(int(m.price_per_call), fee_bps),
                endpoint=endpoint,
                remote_model=m.id,
                peer={
                    "operator": operator,
                    "kind": m.kind,
                    "chain_id": doc.chain_id,
                    "price_per_call": m.price_per_call,
                    "price_per_1k_tokens": m.price_per_1k_tokens,
                },
            )  # fmt: skip
        )
    return cards


def declared(card: ModelCard) -> tuple:
    return (card.description, card.tags, card.price_per_1k_tokens, card.price_per_call, card.endpoint,
            card.remote_model, card.owner, card.peer)  # fmt: skip


def offer(registry, ledger, contracts, fee_bps: int) -> dict:
    """Bring the peer cards in line with the peers this node follows; what changed, and the peers
    left out with the reason. `contracts` (prsm/chain/contracts.py) knows this node's token."""
    from prsm.chain.links import link  # web3: the follower's process has it loaded already

    ours = contracts.addresses()
    with registry.db.engine.connect() as conn:
        rows = conn.execute(select(PEERS).where(PEERS.c.status == "ok").order_by(PEERS.c.operator)).all()
    wanted: dict[str, ModelCard] = {}
    left_out: dict[str, str] = {}
    for r in rows:
        try:
            doc = Catalogue.model_validate(r.document)
        except ValidationError:  # kept by an older PRSM (no token, no settlement): it must announce again
            left_out[r.operator] = "its catalogue lacks how it is paid: it must announce again"
            continue
        if doc.chain_id != contracts.chain_id:
            left_out[r.operator] = (
                f"its catalogue is for chain {doc.chain_id}, this node's is {contracts.chain_id}"
            )
            continue
        if doc.token.lower() != ours["token"].lower():
            left_out[r.operator] = f"it is paid in token {doc.token}; this node settles in {ours['token']}"
            continue
        account = peer_account(r.operator)
        ledger.open_account(account, AccountKind.PEER)
        try:
            link(ledger, account, doc.settlement)
        except InvalidInput as exc:  # its settlement address is another account's here
            left_out[r.operator] = exc.message
            continue
        for card in cards_of(r.operator, r.endpoint, doc, fee_bps):
            wanted[card.id] = card
    existing = {c.id: c for c in registry.list() if c.kind == ModelKind.PEER}
    removed = sorted(set(existing) - set(wanted))
    for model_id in removed:
        registry.delete(model_id)
    added, changed = [], []
    for model_id, card in sorted(wanted.items()):
        if model_id not in existing:
            try:
                registry.register(card)
                added.append(model_id)
            except ModelAlreadyExists:  # registered by a concurrent follower: the same card
                pass
        elif declared(existing[model_id]) != declared(card):
            registry.update(card)
            changed.append(model_id)
    return {"added": added, "changed": changed, "removed": removed, "left_out": left_out}
