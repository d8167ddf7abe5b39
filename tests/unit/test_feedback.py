"""Feedback (issue 14 §1): the session's own account rates its answer or one sub-task, 0 to 1;
one rating per target, the latest kept, the same one again a no-op; shown in the trace."""

from __future__ import annotations

import asyncio
import math

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from prsm.api.schemas import FeedbackRequest
from prsm.errors import InvalidInput, SessionNotFound, SessionRunning
from prsm.nwtn.sessions import SESSIONS


@pytest.fixture
def session_id(nwtn) -> str:
    trace = asyncio.run(nwtn.query("Convert 5 km to miles. In one sentence, what is entropy?", "alice"))
    assert trace["status"] == "completed" and trace["feedback"] == []
    return trace["session_id"]


def test_rating_the_answer_and_a_sub_task_shows_in_the_trace(services, session_id):
    sessions = services.sessions
    task = sessions.trace(session_id)["tasks"][0]["key"]
    answer, changed = sessions.rate(session_id, None, 0.25, "the miles are right, the rest vague")
    assert changed and answer["task"] is None and answer["score"] == 0.25
    rated, changed = sessions.rate(session_id, task, 1.0, None)
    assert changed and rated["task"] == task
    feedback = sessions.trace(session_id)["feedback"]
    assert [(f["task"], f["score"], f["comment"]) for f in feedback] == [
        (None, 0.25, "the miles are right, the rest vague"),
        (task, 1.0, None),
    ]


def test_the_same_rating_again_changes_nothing_and_a_new_one_replaces_it(services, session_id):
    sessions = services.sessions
    first, _ = sessions.rate(session_id, None, 0.5, "ok")
    again, changed = sessions.rate(session_id, None, 0.5, "ok")
    assert not changed and again == first
    newer, changed = sessions.rate(session_id, None, 0.9, "better on reflection")
    assert changed and newer["created_at"] == first["created_at"] and newer["score"] == 0.9
    assert len(sessions.feedback(session_id)) == 1


def test_bad_targets_are_refused_naming_the_field(services, session_id):
    sessions = services.sessions
    with pytest.raises(InvalidInput) as info:
        sessions.rate(session_id, "t99", 1.0, None)
    assert info.value.field == "task"
    with pytest.raises(SessionNotFound):
        sessions.rate("no-such-session", None, 1.0, None)
    with services.db.engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(status="running"))
    with pytest.raises(SessionRunning):
        sessions.rate(session_id, None, 1.0, None)
    assert sessions.feedback(session_id) == []


@pytest.mark.parametrize(
    "body,field",
    [
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": math.nan}, "score"),
        ({"score": "high"}, "score"),
        ({}, "score"),
        ({"score": 1, "comment": "x" * 2001}, "comment"),
        ({"score": 1, "task": "t1; drop"}, "task"),
        ({"score": 1, "stars": 5}, "stars"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(body, field):
    with pytest.raises(ValidationError) as info:
        FeedbackRequest.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_a_blank_comment_is_no_comment():
    assert FeedbackRequest.model_validate({"score": 0, "comment": "   "}).comment is None
