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
import time
import weakref
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

PATH = signing.CALL_PATH
PEERS = FederationPeer.__table__
# This node's record and the set of peers it follows are read at most this often per process: a
# call costs no database read for them, and a flood of calls by strangers none either.
FRESH_S = 5.0


class Members:
    """This node's record and its followed peers' statuses, re-read every FRESH_S seconds; the
    peer accounts this process has opened (an account is opened once, not on every call)."""

    def __init__(self):
        self._read_at = float("-inf")
        self.me: dict | None = None
        self.status: dict[str, str] = {}
        self.opened: set[str] = set()

    def refresh(self, services: Services) -> None:
        if time.monotonic() - self._read_at < FRESH_S:
            return
        self.me = record(services.db)
        with services.db.engine.connect() as conn:
            self.status = dict(conn.execute(select(PEERS.c.operator, PEERS.c.status)).all())
        self._read_at = time.monotonic()


_members: weakref.WeakKeyDictionary[Services, Members] = weakref.WeakKeyDictionary()


def members(services: Services) -> Members:
    if services not in _members:
        _members[services] = Members()
    return _members[services]


def caller(services: Services, headers: Mapping[str, str], body: bytes) -> str:
    """The calling node's operator address, checked (BadSignature otherwise). Blocking."""
    known = members(services)
    known.refresh(services)
    me = known.me
    if not me or not me.get("announced") or not me.get("chain_id"):
        raise NotFound("this node is not a member of a federation: it answers no peers", "node")
    operator, _ = signing.signer(
        headers, "POST", PATH, me["operator"], int(me["chain_id"]), body,
        services.settings.federation_max_skew_s,
    )  # fmt: skip
    status = known.status.get(operator)
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
    opened = members(services).opened
    if account not in opened:
        await asyncio.to_thread(services.ledger.open_account, account, AccountKind.PEER)
        opened.add(account)
    nonce = headers.get(signing.NONCE, "")
    messages = [m.model_dump() for m in call.messages]
    output, charge = await nwtn.complete(
        card.id, messages, call.max_tokens, call.response_format, account, key=f"federation:{account}:{nonce}"
    )
    return chat_completion(card.id, output.text, output.tokens_in, output.tokens_out, {"prsm_charge": charge})
