"""A node's catalogue: the JSON document of its public model cards that peers fetch by CID.

It holds what a peer needs to offer the node's models to its own router and nothing private:
each enabled card's id, kind, description, tags, prices (decimal strings of base units), the
latency this node measured and its measured quality by capability (prsm/quality.py), and how the
node is paid (its FTNS token and settlement contract). No owner account, endpoint, weights
reference or credential, and no peer's model (a node offers only what it runs). The bytes are canonical JSON (sorted keys,
no spaces), so the same catalogue always has the same CID; a peer reads it from its store or IPFS
(every block is checked against its CID there), refuses one over MAX_BYTES, one that does not
parse as a catalogue, and one that names another operator than the node that announced it.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prsm.errors import InvalidInput, NotFound
from prsm.registry import Registry
from prsm.storage.cid import CID
from prsm.types import ModelKind

VERSION = 1
MAX_BYTES = 1024 * 1024
MAX_MODELS = 1000
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
BASE_UNITS = r"^[0-9]{1,78}$"


class Quality(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: float = Field(ge=0, le=1)
    n: float = Field(ge=0)


class CatalogueModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=32)
    description: str = Field(max_length=4000)
    tags: list[str] = Field(max_length=64)
    price_per_1k_tokens: str = Field(pattern=BASE_UNITS)
    price_per_call: str = Field(pattern=BASE_UNITS)
    latency_ms: float | None = Field(default=None, ge=0)
    quality: dict[str, Quality] = Field(default_factory=dict, max_length=64)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    operator: str = Field(pattern=ADDRESS)
    chain_id: int = Field(ge=1)
    # How the node is paid: in this FTNS token, to its settlement contract, from which it also
    # pays (a peer credits what arrives from there to this node's account).
    token: str = Field(pattern=ADDRESS)
    settlement: str = Field(pattern=ADDRESS)
    models: list[CatalogueModel] = Field(max_length=MAX_MODELS)


def build(registry: Registry, operator: str, chain_id: int, token: str, settlement: str) -> Catalogue:
    """This node's catalogue: its own enabled cards (never a peer's: a node offers what it runs),
    with the quality it measured by capability."""
    cards = [c for c in registry.list() if not c.disabled and c.kind != ModelKind.PEER]
    measured = registry.measured_quality([c.id for c in cards])
    models = []
    for card in sorted(cards, key=lambda c: c.id):
        by_capability = {
            capability: Quality(mean=round(e.mean, 4), n=e.n)
            for (capability, cluster), e in sorted(measured.get(card.id, {}).items())
            if cluster == "" and e.n > 0
        }
        models.append(
            CatalogueModel(
                id=card.id,
                kind=str(card.kind),
                description=card.description,
                tags=list(card.tags),
                price_per_1k_tokens=str(card.price_per_1k_tokens),
                price_per_call=str(card.price_per_call),
                latency_ms=None if card.latency_ms is None else round(card.latency_ms, 1),
                quality=by_capability,
            )  # fmt: skip
        )
    return Catalogue(version=VERSION, operator=operator, chain_id=chain_id, token=token, settlement=settlement,
                     models=models)  # fmt: skip


def encode(catalogue: Catalogue) -> bytes:
    return json.dumps(catalogue.model_dump(), sort_keys=True, separators=(",", ":")).encode()


def publish(store, catalogue: Catalogue) -> str:
    """Store the catalogue by CID and pin it; its CID."""
    cid = store.put(encode(catalogue))
    store.pin(cid)
    return cid


def fetch(store, cid: str, operator: str) -> Catalogue:
    """The catalogue `operator` announced as `cid`, checked (see the module's docstring)."""
    try:
        CID.parse(cid)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, "catalogue") from None
    body = b""
    try:
        for chunk in store.get(cid):  # streamed: a huge document is refused, not read whole
            body += chunk
            if len(body) > MAX_BYTES:
                raise InvalidInput(f"catalogue {cid} is over the limit of {MAX_BYTES} bytes", "catalogue")
    except NotFound:
        raise NotFound(f"catalogue {cid} is in neither this node's store nor IPFS", "catalogue") from None
    except InvalidInput as exc:
        raise InvalidInput(exc.message, "catalogue") from None
    try:
        catalogue = Catalogue.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise InvalidInput(
            f"catalogue {cid} is not a catalogue: {where}: {first['msg']}", "catalogue"
        ) from None
    if catalogue.operator.lower() != operator.lower():
        raise InvalidInput(
            f"catalogue {cid} names operator {catalogue.operator}, not {operator} who announced it",
            "catalogue",
        )
    return catalogue
