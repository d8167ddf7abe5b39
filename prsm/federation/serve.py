"""Answering peer nodes: `POST /v1/federation/call`, one sub-task for another node of the network.

The request carries no API key: it is signed by the calling node's chain key
(prsm/chain/signing.py), for this node's operator address and chain. It is answered only when
- the signature verifies, is fresh, and is by a member of the network as this node follows the
  registry (a peer whose catalogue this node read and checked: prsm/federation/follow.py);
- the model is one of this node's own enabled cards (a peer's model is not offered onwards);
- the prices the caller agreed to are at least the card's (else 409: it fetches the catalogue
  again);
- the caller's account here (`peer:<its address>`) can hold the call's quote: a peer may owe
  this node up to PRSM_FEDERATION_CREDIT until its settlement pays (else 402).
The call is billed to that account like a chat completion (the card's owner is paid as for any
use), keyed by the request's nonce: the same signed request twice is refused (409), not run and
billed twice. The answer is a chat completion with `prsm_charge`, what this node charged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pydantic import ValidationError
from sqlalchemy import select

from prsm.api.http import BodyInvalid
from prsm.api.schemas import FederationCall, chat_completion
from prsm.chain import signing
from prsm.db.models import FederationPeer
from prsm.errors import BadSignature, NotFound, PriceChanged, UnknownModel
from prsm.federation.node import record
from prsm.ftns.ledger import AccountKind, peer_account
from prsm.services import Services
from prsm.types import ModelKind

PATH = "/v1/federation/call"
PEERS = FederationPeer.__table__


def caller(services: Services, headers: Mapping[str, str], body: bytes) -> str:
    """The calling node's operator address, checked (BadSignature otherwise). Blocking."""
    me = record(services.db)
    if not me or not me.get("announced") or not me.get("chain_id"):
        raise NotFound("this node is not a member of a federation: it answers no peers", "node")
    operator, _ = signing.signer(
        headers, "POST", PATH, me["operator"], int(me["chain_id"]), body,
        services.settings.federation_max_skew_s,
    )  # fmt: skip
    with services.db.engine.connect() as conn:
        status = conn.execute(select(PEERS.c.status).where(PEERS.c.operator == operator)).scalar()
    if status != "ok":
        raise BadSignature(
            f"{operator} is not a member of the network as this node follows it"
            + (" (its catalogue is not read yet)" if status else " (an announcement is followed within PRSM_FEDERATION_SYNC_EVERY_S)"),
            signing.NODE,
        )  # fmt: skip
    return operator


async def answer(services: Services, nwtn, headers: Mapping[str, str], body: bytes) -> dict:
    """Answer one signed peer call (see the module's docstring) with `nwtn` (the Orchestrator)."""
    operator = await asyncio.to_thread(caller, services, headers, body)
    try:
        call = FederationCall.model_validate_json(body)
    except ValidationError as exc:
        raise BodyInvalid(exc.errors(include_url=False)) from None
    card = await asyncio.to_thread(services.registry.get, call.model)
    if card.kind == ModelKind.PEER or card.disabled:
        raise UnknownModel(f"this node offers no model {call.model!r} to peers", "model")
    asked = {"price_per_call": card.price_per_call, "price_per_1k_tokens": card.price_per_1k_tokens}
    for field, price in asked.items():
        if price > int(getattr(call, field)):
            raise PriceChanged(
                f"{call.model} costs {price} base units ({field}) here now, more than agreed: fetch this "
                "node's catalogue again",
                field,
            )
    account = peer_account(operator)
    await asyncio.to_thread(services.ledger.open_account, account, AccountKind.PEER)
    nonce = headers.get(signing.NONCE, "")
    messages = [m.model_dump() for m in call.messages]
    output, charge = await nwtn.complete(
        card.id, messages, call.max_tokens, call.response_format, account, key=f"federation:{account}:{nonce}"
    )
    return chat_completion(card.id, output.text, output.tokens_in, output.tokens_out, {"prsm_charge": charge})
