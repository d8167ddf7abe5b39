"""Routing: rank the marketplace's models for one sub-task, with the score parts shown.

score = health x (0.50 tag + 0.30 capability similarity + 0.12 price + 0.08 latency)

- tag: 1 when the card lists the sub-task's capability as a tag (an owner's explicit claim).
- capability similarity: cosine of the embeddings of the sub-task and the card's description.
- price: 1 / (1 + estimated cost in units of 0.001 FTNS), so cheaper scores higher; the cost is
  the charge's own formula (prsm/ftns/pricing.py) at a typical sub-task's token counts.
- latency: 1 / (1 + measured latency in seconds); 0.5 while a model is unmeasured.
- health: Laplace-smoothed success rate; an open circuit breaker drops the model entirely.

A card is a candidate when it claims the capability, is a general model, or its description
is similar enough; tool specialists never get sub-tasks outside their tags.

Marketplace governance (`MarketPolicy`, operator settings):
- a card priced past the operator's bounds is not a candidate (registration refuses such prices;
  this keeps out cards registered before the bounds were lowered);
- a new card earns its place: until it has `proven_calls` calls (or belongs to a trusted owner:
  the shipped cards, the operator), it is a candidate only on a random `new_card_share` of
  sub-tasks, and there only if it is no dearer than the dearest proven candidate it competes
  with (so a new card never raises a quote); where no proven card offers the capability at all,
  new cards are the candidates. So a stranger's new card gets a bounded share of traffic until
  it has a track record. Chosen over operator approval: the marketplace stays open without an
  operator in the loop, and the share is one setting.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from prsm.ftns.amounts import FTNS
from prsm.ftns.pricing import call_cost
from prsm.registry import Registry
from prsm.types import EXACT_CAPABILITIES, Candidate, Capability, ModelCard, ModelKind, SubTask

WEIGHTS = {"tag": 0.50, "similarity": 0.30, "price": 0.12, "latency": 0.08}
SIMILARITY_FLOOR = 0.35
# A sub-task's prompt and answer before anything is measured: what the price score assumes.
ESTIMATED_TOKENS_IN, ESTIMATED_TOKENS_OUT = 100, 100
PRICE_SCALE = FTNS // 1000


class Embedder(Protocol):
    """Unit-length sentence vectors (prsm/nwtn/embed.py is the real one: all-MiniLM-L6-v2)."""

    name: str

    def embed_many(self, texts: list[str]) -> list[np.ndarray]: ...


def text_key(embedder: Embedder, text: str) -> str:
    """Names one (embedding model, text) pair, so a stored vector is reused only when valid."""
    return f"{embedder.name}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class MarketPolicy:
    proven_calls: int = 20
    new_card_share: float = 0.05
    trusted_owners: frozenset[str] = frozenset({"prsm-foundation"})
    max_price_per_call: int = 10**18
    max_price_per_1k_tokens: int = 10**18

    def priced_out(self, card: ModelCard) -> bool:
        return (
            card.price_per_call > self.max_price_per_call
            or card.price_per_1k_tokens > self.max_price_per_1k_tokens
        )

    def proven(self, card: ModelCard) -> bool:
        return card.calls >= self.proven_calls or card.owner in self.trusted_owners


def estimated_cost(card: ModelCard) -> int:
    return call_cost(card, ESTIMATED_TOKENS_IN, ESTIMATED_TOKENS_OUT)


def health(card: ModelCard) -> float:
    return (card.calls - card.failures + 1) / (card.calls + 2)


def score_candidates(
    task: SubTask,
    cards: list[ModelCard],
    task_vector: np.ndarray,
    card_vectors: dict[str, np.ndarray],
    open_circuits: frozenset[str] = frozenset(),
    policy: MarketPolicy = MarketPolicy(),
    explore: bool = False,
) -> list[Candidate]:
    """Candidates for `task`, best first; unproven cards only when `explore` (and no dearer than
    the proven ones) or when no proven card is a candidate."""
    ranked = []
    for card in cards:
        if (
            card.disabled
            or card.id in open_circuits
            or card.id not in card_vectors
            or policy.priced_out(card)
        ):
            continue
        tag = 1.0 if task.capability in card.tags else 0.0
        similarity = float(np.dot(task_vector, card_vectors[card.id]))
        general = Capability.GENERAL in card.tags and card.kind != ModelKind.TOOL
        open_to_models = task.capability not in EXACT_CAPABILITIES  # a number is computed, not written
        if not (
            tag
            or (
                open_to_models
                and (general or (card.kind != ModelKind.TOOL and similarity >= SIMILARITY_FLOOR))
            )
        ):
            continue
        cost = estimated_cost(card)
        price = 1.0 / (1.0 + cost / PRICE_SCALE)
        latency = 0.5 if card.latency_ms is None else 1.0 / (1.0 + card.latency_ms / 1000.0)
        fitness = (
            WEIGHTS["tag"] * tag
            + WEIGHTS["similarity"] * max(similarity, 0.0)
            + WEIGHTS["price"] * price
            + WEIGHTS["latency"] * latency
        )
        h = health(card)
        ranked.append(
            Candidate(
                card.id, card.kind, h * fitness, tag, similarity, price, latency, h, cost, policy.proven(card)
            )
        )
    proven = [c for c in ranked if c.proven]
    if proven and not explore:
        ranked = proven
    elif proven:
        ceiling = max(c.estimated_cost for c in proven)
        ranked = [c for c in ranked if c.proven or c.estimated_cost <= ceiling]
    ranked.sort(key=lambda c: (-c.score, c.estimated_cost, c.model_id))
    return ranked


class Router:
    """Ranks models for sub-tasks from the registry, embedding each card once.

    Card vectors are stored on the card row (keyed by embedding model and text hash), so a new
    router replica reuses them. The card list is re-read at most every `refresh_s` seconds: a
    newly registered model gets traffic within that time.
    """

    def __init__(
        self,
        registry: Registry,
        embedder: Embedder,
        refresh_s: float = 1.0,
        policy: MarketPolicy | None = None,
    ):
        self.registry = registry
        self.embedder = embedder
        self.refresh_s = refresh_s
        self.policy = policy or MarketPolicy()
        self._random = random.Random()
        self._cards: list[ModelCard] = []
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded_at = float("-inf")

    def rank(self, task: SubTask, open_circuits: frozenset[str] = frozenset()) -> list[Candidate]:
        return self.rank_many([(task, open_circuits)])[0]

    def rank_many(self, requests: list[tuple[SubTask, frozenset[str]]]) -> list[list[Candidate]]:
        """Rank a batch of sub-tasks; their texts share one embedding pass. Blocking (the
        embedder and, once a second, the registry): callers on an event loop use a thread."""
        vectors = self.embedder.embed_many([task.text for task, _ in requests])
        cards = self.cards()
        share = self.policy.new_card_share
        return [
            score_candidates(
                task, cards, vector, self._vectors, open_circuits, self.policy, self._random.random() < share
            )
            for (task, open_circuits), vector in zip(requests, vectors, strict=True)
        ]

    def cards(self) -> list[ModelCard]:
        if time.monotonic() - self._loaded_at > self.refresh_s:
            self._reload()
        return self._cards

    def _reload(self) -> None:
        cards = self.registry.list()
        stored = self.registry.embeddings()
        vectors = {}
        for card in cards:
            key = text_key(self.embedder, card.capability_text)
            cached = stored.get(card.id)
            if cached and cached[0] == key:
                vectors[card.id] = np.frombuffer(cached[1], dtype=np.float32)
            else:
                (vectors[card.id],) = self.embedder.embed_many([card.capability_text])
                self.registry.store_embedding(card.id, key, vectors[card.id].astype(np.float32).tobytes())
        self._cards, self._vectors, self._loaded_at = cards, vectors, time.monotonic()
