"""Streamed chat completions (`stream: true`), as OpenAI's clients read them: server-sent events,
each a `chat.completion.chunk`, then `data: [DONE]`.

    data: {"object": "chat.completion.chunk", "choices": [{"delta": {"role": "assistant", ...}}]}
    data: {... "choices": [{"delta": {"content": "Photosyn"}}]}
    ...
    data: {... "choices": [{"delta": {}, "finish_reason": "stop"}], "prsm_charge": {...}}
    data: {... "choices": [], "usage": {...}}          (with stream_options.include_usage)
    data: [DONE]

One model: its answer token by token (a few tokens a chunk when the reader is behind). `nwtn`:
the plan once its quote is held, each sub-task as it is answered, then the compiled answer. The
plan and sub-tasks ride as `prsm_event` (the structured event) on chunks whose delta carries a
line for people in `reasoning_content` (where chat UIs show a model's thinking); the `content`
of the whole stream is exactly the unstreamed answer.

Errors: one before the first chunk (the key's account cannot pay, a blocked prompt, an unknown
model) is a plain HTTP error with its status, as unstreamed (`primed`); one after it is an
`error` event, which OpenAI's client raises, and the stream ends. The charge is the unstreamed
one; a client that goes away mid-stream stops the work, and pays only for what ran
(prsm/ftns/billing.py, prsm/nwtn/orchestrator.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from prsm import logs
from prsm.api.http import error_body
from prsm.errors import PRSMError
from prsm.types import ModelOutput

DONE = "data: [DONE]\n\n"
MAX_EVENT_TEXT = 2000  # characters of a sub-task's result in its reasoning line (the event has it all)


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


class Chunks:
    """The chunks of one streamed completion: one id, one creation time."""

    def __init__(self, model: str, include_usage: bool):
        self.model, self.include_usage = model, include_usage
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            body["usage"] = None  # as OpenAI: on every chunk, set on the last one only
        return sse(body | extra)

    def start(self) -> str:
        return self.chunk({"role": "assistant", "content": ""})

    def end(self, tokens_in: int, tokens_out: int, finish_reason: str = "stop", **extra) -> list[str]:
        out = [self.chunk({}, finish_reason, **extra)]
        if self.include_usage:
            usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                     "total_tokens": tokens_in + tokens_out}  # fmt: skip
            out.append(sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage}))  # fmt: skip
        return [*out, DONE]


def error_event(exc: BaseException) -> str:
    """An error after the stream began: an `error` event (OpenAI's client raises it)."""
    if isinstance(exc, PRSMError):
        return sse(error_body(exc.to_dict(), exc.code))
    logs.event("stream failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}"[:500])
    return sse(error_body({"type": "InternalError", "field": None, "message": "internal error"}))


async def primed(stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """`stream` with its first chunk read here: an error before it raises now, so that the route
    answers it with its HTTP status instead of a 200 that carries an error."""
    first = await anext(stream)

    async def rest() -> AsyncIterator[str]:
        try:
            yield first
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    return rest()


def cut_at_stop(text: str, stops: tuple[str, ...] | None) -> tuple[str, bool]:
    """`text` up to the first of the stop sequences, and whether one was found (OpenAI's `stop`:
    the sequence itself is not returned)."""
    found = [at for at in (text.find(s) for s in stops or ()) if at >= 0]
    return (text[: min(found)], True) if found else (text, False)


def _pending(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could be the start of a stop sequence."""
    return max(
        (n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:n])),
        default=0,
    )


async def stopped_at(
    pieces: AsyncIterator[ModelOutput], stops: tuple[str, ...]
) -> AsyncIterator[ModelOutput]:
    """A streamed answer that ends before the first stop sequence: text that could begin one is
    held back until it is clear, and once one is found the stream ends (closing `pieces`, which
    stops the generation; the call is charged for what ran). The last piece has the counts."""
    held, last = "", None
    try:
        async for piece in pieces:
            last = piece
            text, found = cut_at_stop(held + piece.text, stops)
            if found:
                yield replace(piece, text=text, finish_reason="stop")
                return
            keep = _pending(text, stops)
            text, held = text[: len(text) - keep], text[len(text) - keep :]
            yield replace(piece, text=text)
        if held and last is not None:  # the answer ended on the start of a sequence, not on one
            yield replace(last, text=held)
    finally:
        await pieces.aclose()


async def completion_chunks(
    pieces: AsyncIterator[ModelOutput], model: str, include_usage: bool, receipt: dict,
    finished: Callable[[ModelOutput | None], None],
) -> AsyncIterator[str]:  # fmt: skip
    """One model's answer as it is made (prsm/nwtn/orchestrator.py's `complete_stream`);
    `receipt` holds the charge once `pieces` ends; `finished` hears of the last piece (the
    call's counts) however the stream ends."""
    chunks = Chunks(model, include_usage)
    last: ModelOutput | None = None
    try:
        async for piece in pieces:
            if last is None:
                yield chunks.start()
            last = piece
            if piece.text:
                yield chunks.chunk({"content": piece.text})
    except Exception as exc:
        if last is None:
            raise  # nothing sent yet: the route answers it with its status
        yield error_event(exc)
        return
    finally:
        try:
            await pieces.aclose()  # the charge is written before the last chunks go out
        finally:
            finished(last)
    if last is None:  # no piece at all (cannot happen: a call answers at least once)
        yield chunks.start()
        last = ModelOutput("")
    for item in chunks.end(last.tokens_in, last.tokens_out, last.finish_reason, prsm_charge=dict(receipt)):
        yield item


async def query_chunks(
    run: Callable[[Callable[[dict], None]], Awaitable[dict]], include_usage: bool,
    finished: Callable[[dict | None, str], None], stops: tuple[str, ...] | None = None,
) -> AsyncIterator[str]:  # fmt: skip
    """A `nwtn` query as it runs: `run(on_event)` is the orchestrator's `query` with its
    arguments; its plan and sub-task events become chunks as they come, then the answer.
    `finished` hears of the trace (None if there is none) and the outcome, however it ends."""
    chunks = Chunks("nwtn", include_usage)
    events: asyncio.Queue[dict | None] = asyncio.Queue()
    query = asyncio.ensure_future(run(events.put_nowait))
    query.add_done_callback(lambda _: events.put_nowait(None))
    started, trace, outcome = False, None, "cancelled"
    try:
        while (event := await events.get()) is not None:
            if not started:
                yield chunks.start()
                started = True
            yield chunks.chunk({"reasoning_content": describe(event)}, prsm_event=event)
        try:
            trace = query.result()
        except Exception as exc:
            outcome = type(exc).__name__
            if not started:
                raise
            yield error_event(exc)
            return
        outcome = trace["status"]
        if not started:
            yield chunks.start()
        tokens_in = sum(t["tokens_in"] for t in trace["tasks"])
        tokens_out = sum(t["tokens_out"] for t in trace["tasks"])
        answer, _ = cut_at_stop(trace["answer"] or "", stops)
        yield chunks.chunk({"content": answer})
        for item in chunks.end(tokens_in, tokens_out, prsm_session_id=trace["session_id"],
                               prsm_charge=trace["cost"]):  # fmt: skip
            yield item
    finally:
        try:
            if not query.done():  # the client went away: the query stops, and pays what ran
                query.cancel()
                await asyncio.gather(query, return_exceptions=True)
        finally:
            finished(trace, outcome)


def describe(event: dict) -> str:
    """A streamed query's event as a line for people (its `reasoning_content`)."""
    if event.get("event") == "plan":
        tasks = "".join(f"\n- {t['key']} ({t['capability']}): {t['instruction']}" for t in event["tasks"])
        return f"Plan, {len(event['tasks'])} sub-task(s):{tasks}\n"
    if event.get("event") == "task":
        who = f" by {event['model']}" if event.get("model") else ""
        said = event.get("result") if event.get("status") == "done" else event.get("error")
        said = (said or "")[:MAX_EVENT_TEXT]
        return f"{event['key']} {event['status']}{who}{' (cached)' if event.get('cached') else ''}: {said}\n"
    return json.dumps(event)[:MAX_EVENT_TEXT] + "\n"
