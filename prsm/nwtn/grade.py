"""Graders: the automatic half of quality measurement (prsm/quality.py), behind one interface.

A grader looks at one finished sub-task and returns a Verdict: grades (a score in [0, 1] for a
model on that sub-task's capability) and, where it did work worth showing, a note for the trace.

- ToolGrader: an exact tool scores by its success: 1 for an answer, 0 for a failure that was not
  the input's fault (an instruction the tool refused is the planner's or the user's mistake).
  It runs for every tool sub-task, on the hot path: its grades ride in the sub-task's own write.
- ReferenceGrader: a language model's answer is compared with a reference model's answer to the
  same sub-task (the same messages), on a sampled share (`PRSM_GRADE_SHARE`) of language-model
  sub-tasks, in shadow: after the user has the answer, never delaying or changing it, and never
  billed to the user. The reference's call is a chat completion paid by the operator's account
  (prsm/ftns/billing.py: held, captured at its measured cost, the reference's owner paid as for
  any call), and the session's trace gets a `grader` step naming the reference, the score, the
  cost and the paying account. Agreement is the cosine similarity of the two answers' sentence
  embeddings (all-MiniLM-L6-v2, the router's; clipped to [0, 1]): cheap, deterministic, and blind
  to wording. The reference is the operator's `PRSM_GRADE_REFERENCE` (a stronger registered
  model, or a remote judge endpoint registered as a card) or else the answering model's teacher
  (on the embedded default: a distilled student is graded against the model it learnt from). A
  model is never graded against itself. Both get a grade: the answering model its agreement,
  the reference 1 (on that sub-task its answer is the standard), so both are measured on one
  scale and as often.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from prsm import metrics
from prsm.errors import InsufficientFunds, PRSMError, UnknownAccount
from prsm.ftns.amounts import format_ftns
from prsm.ftns.billing import Billing
from prsm.ftns.ledger import AccountKind
from prsm.nwtn.execute import TaskOutcome, messages_for
from prsm.quality import Grade
from prsm.types import ModelCall, ModelCard, ModelKind, ModelOutput, TaskStatus

LANGUAGE_MODELS = frozenset({ModelKind.TRANSFORMERS, ModelKind.OPENAI})
SIMILARITY_DEADLINE_S = 30.0  # the router's embedding of two answers; past it the grade fails alone


@dataclass(frozen=True)
class Finished:
    """A finished sub-task of a session, with the card of the model that answered (if any)."""

    session_id: str
    outcome: TaskOutcome
    card: ModelCard | None
    cluster: str = ""  # the sub-task's cluster of similar sub-tasks (prsm/clusters.py)
    canary_of: str = ""  # answered by a canary student: the incumbent to grade it against


@dataclass
class Verdict:
    grades: list[Grade] = field(default_factory=list)
    note: dict | None = None  # for the trace: what the grader did
    latency_ms: float = 0.0


class Grader(Protocol):
    name: str

    def wants(self, finished: Finished) -> bool: ...

    async def grade(self, finished: Finished) -> Verdict: ...


class ToolGrader:
    name = "tool"

    def wants(self, finished: Finished) -> bool:
        return any(r.get("kind") == ModelKind.TOOL for r in finished.outcome.ranking)

    async def grade(self, finished: Finished) -> Verdict:
        return Verdict(self.grades(finished))

    def grades(self, finished: Finished) -> list[Grade]:
        outcome = finished.outcome
        kinds = {r["model_id"]: r.get("kind") for r in outcome.ranking}
        grades = [
            Grade(
                a.model_id,
                outcome.task.capability,
                1.0 if a.ok else 0.0,
                self.name,
                finished.session_id,
                outcome.task.key,
                finished.cluster,
            )
            for a in outcome.attempts
            if kinds.get(a.model_id) == ModelKind.TOOL and not (a.refused or a.skipped or a.busy)
        ]
        for _ in grades:
            metrics.GRADES.inc(grader=self.name, outcome="graded")
        return grades


CardsFn = Callable[[set[str]], Awaitable[dict[str, ModelCard]]]
CallFn = Callable[[ModelCard, ModelCall], Awaitable[ModelOutput]]
SimilarityFn = Callable[[str, str], Awaitable[float]]


class ReferenceGrader:
    name = "reference"

    def __init__(
        self,
        share: float,
        reference: str | None,
        cards: CardsFn,
        call: CallFn,
        similarity: SimilarityFn,
        billing: Billing,
        payer: str,
        max_new_tokens: int,
        rng: random.Random | None = None,
    ):
        self.share, self.reference = share, reference
        self._cards, self._call, self._similarity = cards, call, similarity
        self._billing, self.payer, self._max_new_tokens = billing, payer, max_new_tokens
        self._random = rng or random.Random()
        self._payer_ready = False

    def reference_for(self, card: ModelCard, canary_of: str = "") -> str | None:
        chosen = canary_of or self.reference or card.teacher
        return None if chosen in (None, card.id) else chosen

    def wants(self, finished: Finished) -> bool:
        """Every canary answer (prsm/canary.py: its test needs them all); else a sampled share."""
        card, outcome = finished.card, finished.outcome
        return (
            card is not None
            and card.kind in LANGUAGE_MODELS
            and outcome.status == TaskStatus.DONE
            and bool(outcome.result)
            and self.reference_for(card, finished.canary_of) is not None
            and (bool(finished.canary_of) or (self.share > 0 and self._random.random() < self.share))
        )

    async def grade(self, finished: Finished) -> Verdict:
        started = time.perf_counter()
        card, outcome = finished.card, finished.outcome
        assert card is not None and outcome.result is not None
        ref_id = self.reference_for(card, finished.canary_of)
        note: dict = {"reference": ref_id, "graded_model": card.id, "paid_by": self.payer}
        if finished.canary_of:
            note["canary"] = finished.cluster
        try:
            ref = (await self._cards({ref_id})).get(ref_id)
            if ref is None or ref.disabled:
                raise PRSMError(f"the reference model {ref_id!r} is not registered or is disabled")
            cards = await self._cards({ref.teacher} - {None})
            if not self._payer_ready:  # captures open payees without the escrow a hold needs
                await asyncio.to_thread(self._billing.ledger.open_account, self.payer, AccountKind.OPERATOR)
                self._payer_ready = True
            call = ModelCall(messages_for(outcome.task, outcome.instruction), self._max_new_tokens)
            output, charge = await self._billing.completion(
                self.payer, ref, call, lambda: self._call(ref, call), cards
            )
            score = await asyncio.wait_for(
                self._similarity(outcome.result, output.text), SIMILARITY_DEADLINE_S
            )
        except (InsufficientFunds, UnknownAccount):
            metrics.GRADES.inc(grader=self.name, outcome="unfunded")
            note["skipped"] = f"the operator's account {self.payer!r} cannot pay the reference's call"
            return Verdict([], note, (time.perf_counter() - started) * 1000)
        except Exception as exc:  # noqa: BLE001 (a shadow grade never fails anything else)
            metrics.GRADES.inc(grader=self.name, outcome="failed")
            note["error"] = (str(exc) if isinstance(exc, PRSMError) else f"{type(exc).__name__}: {exc}")[:500]
            return Verdict([], note, (time.perf_counter() - started) * 1000)
        score = min(1.0, max(0.0, float(score)))
        metrics.GRADES.inc(grader=self.name, outcome="graded")
        task = outcome.task
        grader = f"{self.name}:{ref.id}"
        grades = [
            Grade(card.id, task.capability, score, grader, finished.session_id, task.key, finished.cluster),
            Grade(ref.id, task.capability, 1.0, grader, finished.session_id, task.key, finished.cluster),
        ]
        charged = int(charge["charged"])
        note |= {"score": round(score, 4), "reference_answer": output.text[:2000], "charged": str(charged),
                 "charged_ftns": format_ftns(charged), "shadow": True}  # fmt: skip
        return Verdict(grades, note, (time.perf_counter() - started) * 1000)
