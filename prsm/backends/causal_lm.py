"""transformers causal language models: load a card's weights (prsm/weights.py finds the folder),
then generate, concurrent calls sharing forward passes (prsm/backends/batching.py); plans are
decoded under their JSON schema (prsm/backends/guided.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prsm.backends.batching import ContinuousBatcher
from prsm.backends.guided import PlanDecoder
from prsm.errors import BadInstruction, ContextTooLong
from prsm.storage.base import BlockStore
from prsm.types import PLAN_SCHEMA_NAME, ModelCall, ModelOutput
from prsm.weights import resolve_weights

# The most tokens one call may take, its prompt and its budget together (or the model's own
# limit, if lower). A prompt is computed in one pass that every other row of the batch waits
# for, and its cost grows faster than its length: a 50,000-token message held a replica for
# minutes. Past the cap a call is refused before any work (400, `context_length_exceeded`).
MAX_CONTEXT_TOKENS = 4096


class CausalLMBackend:
    def __init__(self, model, tokenizer, max_batch: int = 16):
        self.model = model.eval()
        self.tokenizer = tokenizer
        own = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.max_context = min(own or MAX_CONTEXT_TOKENS, MAX_CONTEXT_TOKENS)
        # One forward pass at a time per model: concurrent calls share them through the batcher
        # (prsm/backends/batching.py); a plan's guided decoding takes the lock between its steps.
        self._lock = threading.Lock()
        self._plan_decoder = None
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        eos_ids |= set(_as_list(getattr(getattr(model, "generation_config", None), "eos_token_id", None)))
        pad = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
        )
        self.batcher = ContinuousBatcher(self.model, eos_ids, pad, self._lock, max_batch)

    @classmethod
    def load(
        cls, weights: str, model_dir: Path, num_threads: int | None = None, store: BlockStore | None = None,
        max_batch: int = 16,
    ):  # fmt: skip
        if num_threads:
            torch.set_num_threads(num_threads)
        folder = resolve_weights(weights, model_dir, store)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return cls(model, tokenizer, max_batch)

    def fitted(self, messages: list[dict], budget: int) -> list[int]:
        """The call's prompt ids, if the prompt and its budget fit the model's context."""
        prompt = self.prompt_ids(messages)
        if len(prompt) + budget > self.max_context:
            raise ContextTooLong(
                f"the messages are {len(prompt)} tokens and ask for up to {budget} more; this model "
                f"takes at most {self.max_context} in all",
                "messages",
            )
        return prompt

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        if self.tokenizer.chat_template:
            inputs = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True
            )
        else:
            inputs = self.tokenizer("\n".join(str(m.get("content", "")) for m in messages))
        return list(inputs["input_ids"])

    def output(self, prompt: list[int], tokens: list[int], budget: int) -> ModelOutput:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return ModelOutput(text, len(prompt), len(tokens), finish_reason=self.finish_reason(tokens, budget))

    def finish_reason(self, tokens: list[int], budget: int) -> str:
        """ "length" when the budget ran out before an end-of-sequence token, else "stop"."""
        ended = bool(tokens) and tokens[-1] in self.batcher.eos_ids
        return "length" if len(tokens) >= budget and not ended else "stop"

    def generate(self, messages: list[dict], max_new_tokens: int) -> ModelOutput:
        """Greedy generation, blocking: the call waits for its own row of the batch."""
        prompt = self.fitted(messages, max_new_tokens)
        return self.output(prompt, self.batcher.submit(prompt, max_new_tokens).result(), max_new_tokens)

    def generate_plan(self, messages: list[dict], max_tasks: int) -> ModelOutput:
        """A TaskPlan as JSON, decoded under the plan schema (prsm/backends/guided.py)."""
        with self._lock, torch.inference_mode():
            if self._plan_decoder is None:
                self._plan_decoder = PlanDecoder(self.model, self.tokenizer, max_tasks)
            self._plan_decoder.max_tasks = max_tasks
            text = self._plan_decoder.generate(messages)
        return ModelOutput(text=text, tokens_out=len(self.tokenizer.encode(text, add_special_tokens=False)))

    async def stream(self, call: ModelCall) -> AsyncIterator[ModelOutput]:
        """The answer as it is made: each piece is the new text (whole words and characters;
        the answer's leading and trailing blanks left out, as `run` strips them) with the call's
        token counts so far. The pieces joined are `run`'s text for the same call, and the last
        piece has its counts. Closing the stream (the client went away) takes the call's row out
        of the batch at the next step: nothing more is generated for it."""
        if call.response_format:  # a plan is decoded under its schema: it comes whole
            yield await self.run(call)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        def listen(token: int) -> None:  # on the batch's thread
            loop.call_soon_threadsafe(queue.put_nowait, token)

        prompt = self.fitted(list(call.messages), call.max_new_tokens)
        future = self.batcher.submit(prompt, call.max_new_tokens, listen)
        # Settled after its last token was told: the end marker queues behind that token.
        future.add_done_callback(lambda _: _threadsafe(loop, queue.put_nowait, None))
        tokens: list[int] = []
        text = Detokenizer(self.tokenizer)
        try:
            while True:
                token = await queue.get()
                ended = token is None
                if not ended:
                    tokens.append(token)
                while not ended and not queue.empty():  # behind: decode what came, once
                    token = queue.get_nowait()
                    ended = token is None
                    if not ended:
                        tokens.append(token)
                if ended:
                    break
                piece = text.piece(tokens)
                if piece:
                    yield ModelOutput(piece, len(prompt), len(tokens))
            tokens = future.result()  # the batch's error, if it failed
            finish = self.finish_reason(tokens, call.max_new_tokens)
            yield ModelOutput(text.rest(tokens), len(prompt), len(tokens), finish_reason=finish)
        finally:
            future.cancel()  # no-op once it is done

    async def run(self, call: ModelCall) -> ModelOutput:
        if call.response_format:
            schema = (call.response_format.get("json_schema") or {}).get("name")
            if call.response_format.get("type") != "json_schema" or schema != PLAN_SCHEMA_NAME:
                raise BadInstruction(  # the caller's mistake (NWTN refuses it earlier, with a 422)
                    f"local models decode only the {PLAN_SCHEMA_NAME!r} json_schema", "response_format"
                )
            self.fitted(list(call.messages), 0)  # the plan's own length is bounded by its schema
            max_tasks = int(call.response_format["json_schema"].get("max_tasks", 12))
            return await asyncio.to_thread(self.generate_plan, list(call.messages), max_tasks)
        prompt = self.fitted(list(call.messages), call.max_new_tokens)
        # Cancelled (the caller went away): the future is cancelled and its row leaves the batch.
        tokens = await asyncio.wrap_future(self.batcher.submit(prompt, call.max_new_tokens))
        return self.output(prompt, tokens, call.max_new_tokens)


class Detokenizer:
    """Text of a growing list of tokens, handed out in pieces that never need taking back: a
    piece ends before a partial character (a byte-level token can split one) and before
    trailing blanks (the finished answer is stripped; they are sent once more text follows)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.sent = ""

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def piece(self, tokens: list[int]) -> str:
        text = self._text(tokens).rstrip()
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""  # mid-character, or the text so far reads differently: wait for more
        new, self.sent = text[len(self.sent) :], text
        return new

    def rest(self, tokens: list[int]) -> str:
        """What the finished answer adds to the pieces sent (its text is `run`'s)."""
        text = self._text(tokens)
        new = text[len(self.sent) :] if text.startswith(self.sent) else ""
        self.sent = text
        return new


def _threadsafe(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
        loop.call_soon_threadsafe(fn, *args)


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
