"""Routing: rank the marketplace's models for one sub-task, with the score parts shown.

score = health x (0.40 tag + 0.20 capability similarity + 0.35 value + 0.05 latency)
value = w x quality + (1 - w) x price,   w the quality/cost trade-off in [0, 1]

- tag: 1 when the card lists the sub-task's capability as a tag (an owner's explicit claim).
- capability similarity: cosine of the embeddings of the sub-task and the card's description.
- quality: the model's measured quality for the sub-task's capability, or for its cluster of
  similar sub-tasks when it falls in one (prsm/clusters.py; shrunk towards the capability's while
  it has few grades), from prsm/quality.py (the posterior mean of its grades, 0.5 with none) plus an exploration bonus of EXPLORATION x its
  uncertainty, so a little-measured model is tried a bounded amount more (at most +0.14, for a
  model with no grades) and a well-measured one is judged on its record.
- price: 1 / (1 + estimated cost in units of 0.001 FTNS), so cheaper scores higher; the cost is
  the charge's own formula (prsm/ftns/pricing.py) at a typical sub-task's token counts.
- w: the operator's `PRSM_ROUTE` ("quality" 1, "balanced" 0.5, "cost" 0, or a number), which a
  query may override (`"route"`): RouteLLM's threshold, swept by benchmarks/loop.py.
- latency: 1 / (1 + measured latency in seconds); 0.5 while a model is unmeasured.
- health: the success rate with one success assumed, (calls - failures + 1) / (calls + 1): 1 for
  a new card (its newness is the market policy's and the quality estimate's business, not a
  penalty here), falling with each failure; an open circuit breaker drops the model entirely.

A card is a candidate when it claims the capability, is a general model, or its description
is similar enough; tool specialists (a peer node's included) never get sub-tasks outside their
tags. A peer node's model (prsm/federation/market.py) is a candidate only for the capabilities
the operator lets go to peers (PRSM_FEDERATION_CAPABILITIES), priced with the federation fee, and
judged on this node's own measurements of it like any card (new, it earns its place as below).

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

import dataclasses
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from prsm import canary, clusters
from prsm.ftns.amounts import FTNS
from prsm.ftns.pricing import call_cost
from prsm.nwtn.execute import blocked
from prsm.quality import Estimate, estimate_for
from prsm.registry import Registry
from prsm.settings import ROUTES
from prsm.types import EXACT_CAPABILITIES, Candidate, Capability, ModelCard, ModelKind, SubTask

WEIGHTS = {"tag": 0.40, "similarity": 0.20, "value": 0.35, "latency": 0.05}
EXPLORATION = 0.5  # x the quality estimate's standard deviation (at most 0.29)
Quality = dict[str, dict[tuple[str, str], Estimate]]  # model id -> (capability, cluster) -> estimate
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
    # Capabilities whose sub-tasks may go to peer nodes' models (PRSM_FEDERATION_CAPABILITIES).
    federated: frozenset[str] = frozenset(Capability)

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
    return (card.calls - card.failures + 1) / (card.calls + 1)


def score_candidates(
    task: SubTask,
    cards: list[ModelCard],
    task_vector: np.ndarray,
    card_vectors: dict[str, np.ndarray],
    open_circuits: frozenset[str] = frozenset(),
    policy: MarketPolicy = MarketPolicy(),
    explore: bool = False,
    quality: Quality | None = None,
    route: float = ROUTES["balanced"],
    cluster: str = "",
) -> list[Candidate]:
    """Candidates for `task`, best first; unproven cards only when `explore` (and no dearer than
    the proven ones) or when no proven card is a candidate. `route` is the quality weight w."""
    quality = quality or {}
    ranked = []
    for card in cards:
        if (
            card.disabled
            or blocked(card.id, open_circuits)
            or card.id not in card_vectors
            or policy.priced_out(card)
            or (card.kind == ModelKind.PEER and task.capability not in policy.federated)
        ):
            continue
        tag = 1.0 if task.capability in card.tags else 0.0
        similarity = float(np.dot(task_vector, card_vectors[card.id]))
        general = Capability.GENERAL in card.tags and not card.tool_like
        open_to_models = task.capability not in EXACT_CAPABILITIES  # a number is computed, not written
        if not (
            tag or (open_to_models and (general or (not card.tool_like and similarity >= SIMILARITY_FLOOR)))
        ):
            continue
        cost = estimated_cost(card)
        price = 1.0 / (1.0 + cost / PRICE_SCALE)
        latency = 0.5 if card.latency_ms is None else 1.0 / (1.0 + card.latency_ms / 1000.0)
        measured = estimate_for(quality.get(card.id, {}), task.capability, cluster)
        optimistic = min(1.0, measured.mean + EXPLORATION * measured.std)
        value = route * optimistic + (1.0 - route) * price
        fitness = (
            WEIGHTS["tag"] * tag
            + WEIGHTS["similarity"] * max(similarity, 0.0)
            + WEIGHTS["value"] * value
            + WEIGHTS["latency"] * latency
        )
        h = health(card)
        ranked.append(
            Candidate(
                card.id,
                card.kind,
                h * fitness,
                tag,
                similarity,
                price,
                latency,
                h,
                cost,
                policy.proven(card),
                measured.mean,
                measured.std,
                int(round(measured.n)),
                optimistic,
                cluster,
            )  # fmt: skip
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
        route: float = ROUTES["balanced"],
    ):
        self.registry = registry
        self.embedder = embedder
        self.refresh_s = refresh_s
        self.policy = policy or MarketPolicy()
        self.route = route  # the operator's default trade-off (PRSM_ROUTE)
        self.cluster_threshold = clusters.THRESHOLD
        self._random = random.Random()
        self._cards: list[ModelCard] = []
        self._quality: Quality = {}
        self._placer = clusters.Placer([])
        self._canaries: dict[str, list[canary.Canary]] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded_at = float("-inf")

    def rank(
        self, task: SubTask, open_circuits: frozenset[str] = frozenset(), route: float | None = None
    ) -> list[Candidate]:
        return self.rank_many([(task, open_circuits, route)])[0]

    def rank_many(
        self, requests: list[tuple[SubTask, frozenset[str], float | None]]
    ) -> list[list[Candidate]]:
        """Rank a batch of (sub-task, open circuits, trade-off or None for the operator's); their
        texts share one embedding pass. Blocking (the embedder and, once a second, the
        registry): callers on an event loop use a thread."""
        vectors = self.embedder.embed_many([task.text for task, _, _ in requests])
        cards = self.cards()
        share = self.policy.new_card_share
        ranked = []
        for (task, open_circuits, route), vector in zip(requests, vectors, strict=True):
            cluster = self._placer.place(task.capability, vector)
            args = (task, cards, vector, self._vectors, open_circuits, self.policy)
            weights = (self._quality, self.route if route is None else route, cluster)
            found = score_candidates(*args, self._random.random() < share, *weights)
            if cluster in self._canaries:  # a canary's student competes whether proven or not
                found = self.apply_canaries(
                    found, score_candidates(*args, True, *weights), self._canaries[cluster]
                )
            ranked.append(found)
        return ranked

    def apply_canaries(
        self, ranked: list[Candidate], every: list[Candidate], canaries: list[canary.Canary]
    ) -> list[Candidate]:
        """A running canary's student goes first on its share of the cluster's sub-tasks (marked
        with the incumbent it is graded against) and is left out of the rest; a promoted one
        goes first on all of them. The others keep their order behind it, as fallbacks."""
        for c in canaries:
            student = next((x for x in every if x.model_id == c.student), None)
            rest = [x for x in ranked if x.model_id != c.student]
            if student is not None and (c.status == "promoted" or self._random.random() < c.share):
                ranked = [
                    dataclasses.replace(student, canary=c.incumbent if c.status == "canary" else ""),
                    *rest,
                ]
            else:
                ranked = rest
        return ranked

    def similarity(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Cosine similarity of each pair of texts' embeddings, clipped to [0, 1] (a grader's
        measure of agreement: prsm/nwtn/grade.py). Blocking, like `rank_many`."""
        vectors = self.embedder.embed_many([t for pair in pairs for t in pair])
        return [
            min(1.0, max(0.0, float(np.dot(vectors[2 * i], vectors[2 * i + 1])))) for i in range(len(pairs))
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
        self._quality = self.registry.measured_quality()
        self._canaries = canary.active(self.registry.db)
        self._placer = clusters.Placer(
            clusters.load(self.registry.db, self.embedder.name), self.cluster_threshold
        )
        self._cards, self._vectors, self._loaded_at = cards, vectors, time.monotonic()
