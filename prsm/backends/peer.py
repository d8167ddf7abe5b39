"""A model of another PRSM node (a card of kind `peer`, offered from its catalogue by
prsm/federation/market.py), called over HTTP with a request signed by this node's chain key.

What goes to the peer is the sub-task only: its chat messages, the answer's token budget, the
model's id there and the prices this node agreed to (the peer's catalogue's); never the user's
prompt, account, key or session. The call goes through the egress policy like any remote endpoint
(checked destination, no redirects, a deadline, a size cap). The peer answers with the text,
its token counts and what it charged this node, which must be within the agreed prices for those
tokens: a peer that charges more, or answers in another shape, has failed the call.
"""

from __future__ import annotations

import asyncio
import json

from prsm.backends.remote import RemoteChatBackend
from prsm.chain import signing
from prsm.egress import EgressPolicy
from prsm.errors import BadInstruction, ModelCallFailed
from prsm.ftns.pricing import call_cost
from prsm.types import ModelCall, ModelCard, ModelOutput

PATH = signing.CALL_PATH


def agreed_cost(card: ModelCard, tokens_in: int, tokens_out: int) -> int:
    """What the peer may charge for a call of these token counts at its catalogue's prices."""
    peer = card.peer or {}
    asked = ModelCard(id=card.id, kind=card.kind, description="", owner="", licence="",
                      price_per_call=int(peer.get("price_per_call", 0)),
                      price_per_1k_tokens=int(peer.get("price_per_1k_tokens", 0)))  # fmt: skip
    return call_cost(asked, tokens_in, tokens_out)


class PeerBackend(RemoteChatBackend):
    def __init__(self, card: ModelCard, policy: EgressPolicy, key):
        if not card.peer or not card.remote_model:
            raise ModelCallFailed(f"{card.id} is not a peer node's model", "model")
        super().__init__(card.endpoint or "", card.remote_model, policy)
        self.name = f"peer {card.peer['operator']} ({self.endpoint.host_header})"
        self.card = card
        self.key = key  # this node's operator key (prsm/chain/signing.py)

    async def run(self, call: ModelCall) -> ModelOutput:
        peer = self.card.peer or {}
        body = {"model": self.remote_model, "messages": list(call.messages), "max_tokens": call.max_new_tokens,
                "price_per_call": peer["price_per_call"], "price_per_1k_tokens": peer["price_per_1k_tokens"]}  # fmt: skip
        if call.response_format:
            body["response_format"] = call.response_format
        content = json.dumps(body).encode()
        headers = signing.sign(self.key, "POST", PATH, peer["operator"], int(peer["chain_id"]), content)
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                status, answer = await self._post(content, PATH, headers)
        except TimeoutError:
            raise ModelCallFailed(f"{self.name} did not answer within {self.policy.deadline_s:g} s") from None
        if status != 200:
            try:
                error = json.loads(answer)["error"]
                message, kind = str(error.get("message", ""))[:300], error.get("type")
            except (ValueError, KeyError, TypeError, AttributeError):
                message, kind = answer[:300].decode(errors="replace"), None
            if status == 422 and kind == "BadInstruction":  # the sub-task, not the peer, is at fault
                raise BadInstruction(f"{self.name}: {message}", "instruction")
            raise ModelCallFailed(f"{self.name} answered {status}: {message}")
        try:
            data = json.loads(answer)
            text = data["choices"][0]["message"]["content"]
            tokens_in, tokens_out = (
                int(data["usage"]["prompt_tokens"]),
                int(data["usage"]["completion_tokens"]),
            )
            charged = int(data["prsm_charge"]["charged"])
            if not isinstance(text, str) or min(tokens_in, tokens_out, charged) < 0:
                raise TypeError("content is not text, or a count is negative")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelCallFailed(f"{self.name} sent no answer of a peer: {exc}") from None
        if tokens_out > call.max_new_tokens:
            raise ModelCallFailed(
                f"{self.name} counted {tokens_out} tokens out of at most {call.max_new_tokens}"
            )
        bound = agreed_cost(self.card, tokens_in, tokens_out)
        if charged > bound:
            raise ModelCallFailed(f"{self.name} charged {charged}, more than its prices allow ({bound})")
        return ModelOutput(text=text, tokens_in=tokens_in, tokens_out=tokens_out, charged=charged)
