"""Compiling: one answer from the sub-task results, plus the sources it rests on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prsm.nwtn.execute import TaskOutcome
from prsm.types import ModelCard, ModelKind, SessionStatus, TaskStatus

UNVERIFIED = "[unverified: the numbers in this part come from a general language model, not an exact tool]"
# A peer node's answer: its numbers may come from its tool or its language model; this node did
# not compute them (each node trusts its own measurements).
FROM_PEER = "[unverified here: the numbers in this part come from a peer node's model, not this node's tools]"
_DIGIT = re.compile(r"\d")


def verified(kind: ModelKind | str | None, result: str | None) -> bool | None:
    """True: an exact tool computed this result. False: a language model wrote a result with
    numbers in it, which nothing checked. None: no result, or one without numbers."""
    if result is None or kind is None:
        return None
    if kind == ModelKind.TOOL:
        return True
    return False if _DIGIT.search(result) else None


@dataclass(frozen=True)
class Compiled:
    answer: str
    status: SessionStatus  # completed | partial | failed


def compile_answer(outcomes: dict[str, TaskOutcome]) -> Compiled:
    ordered = list(outcomes.values())
    done = [o for o in ordered if o.status == TaskStatus.DONE]
    if len(done) == len(ordered):
        status = SessionStatus.COMPLETED
    else:
        status = SessionStatus.PARTIAL if done else SessionStatus.FAILED

    def body(o: TaskOutcome) -> str:
        if o.status != TaskStatus.DONE:
            return f"(not answered: {o.error})"
        if verified(o.kind, o.result) is not False:
            return str(o.result)
        return f"{o.result} {FROM_PEER if o.kind == ModelKind.PEER else UNVERIFIED}"

    if len(ordered) == 1:
        answer = body(ordered[0])
    else:
        answer = "\n".join(f"{i}. {o.instruction.rstrip()}\n   {body(o)}" for i, o in enumerate(ordered, 1))
    return Compiled(answer=answer, status=status)


def sources(assignments: list[tuple[str, str]], cards: dict[str, ModelCard]) -> list[dict]:
    """Which models the answer rests on, with owner, licence and weights: one entry per model."""
    by_model: dict[str, dict] = {}
    for task_key, model_id in assignments:
        card = cards.get(model_id)
        entry = by_model.setdefault(
            model_id,
            {
                "model_id": model_id,
                "kind": card.kind if card else None,
                "owner": card.owner if card else None,
                "licence": card.licence if card else None,
                "weights": card.weights if card else None,
                "endpoint": card.endpoint if card else None,
                # The peer node (its operator address) that answered, for a peer's model.
                "node": (card.peer or {}).get("operator") if card else None,
                "tasks": [],
            },
        )
        entry["tasks"].append(task_key)
    return list(by_model.values())
