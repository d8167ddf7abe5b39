"""Compiling: one answer from the sub-task results, plus the sources it rests on."""

from __future__ import annotations

from dataclasses import dataclass

from prsm.nwtn.execute import TaskOutcome
from prsm.types import ModelCard, SessionStatus, TaskStatus


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

    if len(ordered) == 1:
        only = ordered[0]
        answer = only.result if only.status == TaskStatus.DONE else f"(not answered: {only.error})"
    else:
        lines = []
        for i, o in enumerate(ordered, 1):
            body = o.result if o.status == TaskStatus.DONE else f"(not answered: {o.error})"
            lines.append(f"{i}. {o.instruction.rstrip()}\n   {body}")
        answer = "\n".join(lines)
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
                "tasks": [],
            },
        )
        entry["tasks"].append(task_key)
    return list(by_model.values())
