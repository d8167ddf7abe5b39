"""Streamed chat completions (prsm/api/streaming.py) without Ray: the chunks OpenAI's client
reads, the charge against the unstreamed one, and what a client that goes away pays."""

import asyncio
import json

import pytest
from openai.types.chat import ChatCompletionChunk

from prsm.api.streaming import completion_chunks, cut_at_stop, primed, query_chunks, stopped_at
from prsm.errors import InsufficientFunds, UnknownModel
from prsm.ftns.pricing import call_cost
from prsm.registry import DEFAULT_MODEL_ID
from prsm.types import ModelOutput

QUESTION = [{"role": "user", "content": "What does a catalyst do in a reaction"}]


def events(chunks: list[str]) -> list[dict | str]:
    """The server-sent events as the client parses them: JSON objects, then the [DONE] marker."""
    out = []
    for chunk in chunks:
        assert chunk.startswith("data: ") and chunk.endswith("\n\n"), chunk
        data = chunk[len("data: ") : -2]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def drain(stream) -> list[str]:
    return [chunk async for chunk in stream]


def stream_completion(nwtn, receipt, include_usage=False, account="alice", model=DEFAULT_MODEL_ID):
    pieces = nwtn.complete_stream(model, QUESTION, 16, None, account, receipt)
    return completion_chunks(pieces, model, include_usage, receipt, lambda last: None)


def test_a_streamed_completion_is_the_unstreamed_answer_in_valid_chunks_at_the_same_charge(nwtn):
    async def scenario():
        output, charge = await nwtn.complete(DEFAULT_MODEL_ID, QUESTION, 16, None, "alice")
        receipt: dict = {}
        chunks = await drain(await primed(stream_completion(nwtn, receipt, include_usage=True)))
        return output, charge, receipt, events(chunks)

    output, charge, receipt, got = asyncio.run(scenario())
    assert got[-1] == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(e) for e in got[:-1]]  # the official client's type
    assert parsed[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert content == output.text
    assert sum(1 for c in parsed if c.choices and c.choices[0].delta.content) > 3  # piece by piece
    assert parsed[-2].choices[0].finish_reason == "stop"
    assert got[-2]["choices"] == [] and got[-2]["usage"]["completion_tokens"] == output.tokens_out
    assert got[-3]["prsm_charge"] == receipt
    assert receipt["charged"] == charge["charged"] and int(charge["charged"]) > 0


def test_a_client_that_goes_away_mid_stream_stops_the_model_and_pays_for_the_tokens_made(nwtn, services):
    card = services.registry.get(DEFAULT_MODEL_ID)
    before = services.ledger.balance("alice")

    async def scenario():
        receipt: dict = {}
        stream = await primed(stream_completion(nwtn, receipt))
        got = [await anext(stream) for _ in range(3)]  # the role chunk and two words
        await stream.aclose()  # what Serve does when the HTTP client disconnects
        return receipt, got

    receipt, got = asyncio.run(scenario())
    made = 2  # two pieces of one token each reached the client
    tokens_in = events(got[-1:])[0]  # (a content chunk)
    assert tokens_in["choices"][0]["delta"]["content"]
    charged = int(receipt["charged"])
    assert charged == call_cost(card, 8 + len(QUESTION[0]["content"].split()), made)
    assert services.ledger.balance("alice") == before - charged
    assert services.ledger.balance("escrow:alice") == 0  # the rest of the hold went back


def test_stop_sequences_cut_an_answer_before_the_first_of_them():
    assert cut_at_stop("a cat. A dog.", (".", "dog")) == ("a cat", True)
    assert cut_at_stop("a cat", ("dog",)) == ("a cat", False)
    assert cut_at_stop("a cat", None) == ("a cat", False)


def test_a_stop_sequence_split_across_pieces_ends_the_stream_and_closes_the_generation():
    closed = []

    async def pieces(*texts):
        try:
            for i, text in enumerate(texts, 1):
                yield ModelOutput(text, 5, i)
        finally:
            closed.append(len(texts))

    async def collect(stream) -> list[ModelOutput]:
        return [piece async for piece in stream]

    got = asyncio.run(collect(stopped_at(pieces("Hel", "lo EN", "D more", "never"), ("END",))))
    assert "".join(p.text for p in got) == "Hello "
    assert (got[-1].tokens_out, got[-1].finish_reason) == (3, "stop") and closed == [4]
    # The answer ends on what could have begun a sequence: held back, then sent with the counts.
    got = asyncio.run(collect(stopped_at(pieces("One E", "N"), ("END",))))
    assert "".join(p.text for p in got) == "One EN" and got[-1].tokens_out == 2
    assert got[-1].finish_reason == "stop"  # the model's own (it ended at its end token)


def test_a_streamed_completion_with_stop_ends_before_it_and_pays_only_for_what_ran(nwtn, services):
    async def scenario():
        output, charge = await nwtn.complete(DEFAULT_MODEL_ID, QUESTION, 16, None, "alice")
        middle = len(output.text) // 2
        stop = output.text[middle : middle + 3]
        receipt: dict = {}
        pieces = stopped_at(
            nwtn.complete_stream(DEFAULT_MODEL_ID, QUESTION, 16, None, "alice", receipt), (stop,)
        )
        chunks = completion_chunks(pieces, DEFAULT_MODEL_ID, False, receipt, lambda last: None)
        return output, charge, stop, receipt, events(await drain(await primed(chunks)))

    output, charge, stop, receipt, got = asyncio.run(scenario())
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in got[:-1] if e["choices"])
    assert content == output.text[: output.text.find(stop)]
    assert got[-2]["choices"][0]["finish_reason"] == "stop"
    assert 0 < int(receipt["charged"]) < int(charge["charged"])  # the generation stopped there
    assert services.ledger.balance("escrow:alice") == 0


def test_errors_before_the_first_chunk_are_plain_errors_and_hold_nothing(nwtn, services):
    services.ledger.open_account("broke")
    with pytest.raises(UnknownModel):
        asyncio.run(primed(stream_completion(nwtn, {}, model="no-such-model")))
    with pytest.raises(InsufficientFunds):
        asyncio.run(primed(stream_completion(nwtn, {}, account="broke")))
    assert services.ledger.balance("escrow:broke") == 0 and services.ledger.balance("escrow:alice") == 0


def test_a_model_that_fails_mid_stream_ends_it_with_an_error_event_and_charges_what_ran(
    nwtn, services, models
):
    class Breaks:
        async def run(self, call):
            raise AssertionError("unused")

        async def stream(self, call):
            yield ModelOutput("Catalysts", 20, 1)
            raise RuntimeError("the replica ran out of memory")

    models.host(DEFAULT_MODEL_ID, Breaks())
    receipt: dict = {}
    got = events(asyncio.run(drain(stream_completion(nwtn, receipt))))
    assert got[-1]["error"]["type"] == "ModelCallFailed" and "memory" in got[-1]["error"]["message"]
    assert "[DONE]" not in got
    assert int(receipt["charged"]) == call_cost(services.registry.get(DEFAULT_MODEL_ID), 20, 1)
    assert services.ledger.balance("escrow:alice") == 0


def run_query(nwtn, prompt):
    return lambda on_event: nwtn.query(prompt, "alice", None, None, on_event)


def test_a_streamed_nwtn_query_sends_its_plan_each_sub_task_then_the_unstreamed_answer(nwtn, services):
    finished = []
    chunks = asyncio.run(
        drain(
            query_chunks(
                run_query(nwtn, "Integrate x^2 from 0 to 3. Convert 2 km to m."),
                True,
                lambda trace, status: finished.append((trace, status)),
            )
        )  # fmt: skip
    )
    got = events(chunks)
    for e in got[:-1]:
        ChatCompletionChunk.model_validate(e)
    kinds = [e.get("prsm_event", {}).get("event") for e in got[1:-1]]
    assert kinds[:3] == ["plan", "task", "task"]
    plan = got[1]["prsm_event"]
    assert [t["key"] for t in plan["tasks"]] == ["t1", "t2"]
    assert "Plan, 2 sub-task(s)" in got[1]["choices"][0]["delta"]["reasoning_content"]
    results = {e["prsm_event"]["key"]: e["prsm_event"]["result"] for e in got if e != "[DONE]" and "prsm_event" in e
               and e["prsm_event"]["event"] == "task"}  # fmt: skip
    assert results["t1"] == "9" and "2000" in results["t2"]
    ((trace, status),) = finished
    assert status == "completed" and trace["session_id"] == plan["session_id"]
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in got[:-1] if e["choices"])
    assert content == services.sessions.trace(plan["session_id"])["answer"]
    assert got[-3]["prsm_charge"] == trace["cost"] and got[-3]["prsm_session_id"] == plan["session_id"]


def test_a_client_that_leaves_a_streamed_query_pays_for_the_sub_tasks_it_was_sent(nwtn, services, models):
    """Its results were streamed: leaving before the answer is not a way to get them free. The
    sub-task still running is cancelled and the rest of the hold goes back."""
    cancelled = []

    class Hangs:
        async def run(self, call):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(call)
                raise

    models.host(DEFAULT_MODEL_ID, Hangs())
    before = services.ledger.balance("alice")

    async def scenario():
        stream = await primed(query_chunks(run_query(nwtn, "Integrate x^2 from 0 to 3. Explain what entropy is."),
                                           False, lambda trace, status: None))  # fmt: skip
        got = []
        async for chunk in stream:
            got.append(chunk)
            event = events([chunk])[0].get("prsm_event", {})
            if event.get("event") == "task":
                break
        await stream.aclose()
        return events(got)

    got = asyncio.run(scenario())
    session_id = got[1]["prsm_event"]["session_id"]
    assert got[-1]["prsm_event"]["key"] == "t1" and got[-1]["prsm_event"]["result"] == "9"
    assert len(cancelled) == 1
    trace = services.sessions.trace(session_id)
    assert trace["status"] == "failed" and "went away" in trace["error"]
    paid = before - services.ledger.balance("alice")
    tool = services.registry.get("sympy-cas")
    assert paid == int(trace["cost"]["charged"]) == tool.price_per_call + services.settings.query_fee
    assert services.ledger.balance("escrow:alice") == 0


def test_an_answer_cut_at_its_budget_finishes_with_length_streamed_or_not():
    from prsm.api.schemas import chat_completion
    from prsm.api.streaming import Chunks

    last = events(Chunks("m", True).end(3, 8, "length"))
    assert last[0]["choices"][0]["finish_reason"] == "length" and last[1]["usage"]["completion_tokens"] == 8
    assert chat_completion("m", "x", 3, 8, None, "length")["choices"][0]["finish_reason"] == "length"
    assert chat_completion("m", "x", 3, 8)["choices"][0]["finish_reason"] == "stop"
