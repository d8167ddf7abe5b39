"""Continuous batching for a causal LM: concurrent generations on one model share every forward
pass, joining and leaving the batch at any step.

One thread per model runs the loop. Each step it takes the requests waiting (up to `max_batch`
rows in all), computes their prompts together (left-padded, with an attention mask and each row's
own positions), merges their key/value cache into the running batch's (padding the shorter on
the left), then decodes one token for every row in one forward pass. A row leaves as soon as it
has its end-of-sequence token or its own budget of new tokens, and its caller gets its answer at
that moment: a long call never holds a short one back past its own length, and a call that
arrives while others are running waits one step, not for them to finish. A caller that goes away
(its future cancelled) is dropped at the next step, so the work stops with it.

Decoding is greedy, like the one-at-a-time `generate` it replaces; padding is masked, so a row's
tokens are the ones it gets alone (tests/integration/test_causal_lm.py checks this on the real
model). Measured with benchmarks/generation.py.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def settle(future: Future, outcome) -> None:
    """Give a caller its tokens or the error, unless it went away meanwhile."""
    with contextlib.suppress(InvalidStateError):  # cancelled between the check and now
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


IDLE_S = 30.0


@dataclass
class Row:
    prompt: list[int]
    budget: int
    future: Future
    listen: Callable[[int], None] | None = None  # told each new token (a streamed call)
    tokens: list[int] = field(default_factory=list)

    def add(self, token: int) -> None:
        self.tokens.append(token)
        if self.listen is not None:
            try:
                self.listen(token)
            except Exception:  # noqa: BLE001 (a listener gone wrong never fails the batch)
                self.listen = None


class ContinuousBatcher:
    def __init__(self, model, eos_ids: set[int], pad_id: int, lock: threading.Lock, max_batch: int = 16):
        self.model, self.eos_ids, self.pad_id, self.max_batch = model, eos_ids, pad_id, max_batch
        self._lock = lock  # the model's: a plan decoding on the same model runs between steps
        self._waiting: deque[Row] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        # The running batch: its rows, the cache, the attention mask, the next input tokens.
        self._rows: list[Row] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._next: torch.Tensor | None = None
        self.steps = 0  # forward passes of the decode loop (for tests and benchmarks)

    def submit(
        self, prompt: list[int], max_new_tokens: int, listen: Callable[[int], None] | None = None
    ) -> Future:
        """A Future of the generated token ids (the end-of-sequence token included, if reached).
        `listen`, if given, is called with each token as it is made, on the batch's thread (it
        must be quick: a streamed call hands the token to its event loop), before the future
        is settled."""
        future: Future = Future()
        if max_new_tokens < 1:
            future.set_result([])
            return future
        with self._wake:
            self._waiting.append(Row(list(prompt), max_new_tokens, future, listen))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="generate", daemon=True)
                self._thread.start()
            self._wake.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._rows:
                    # Idle for a while: the thread ends (the next call starts another), so a model
                    # its replica unloads is not kept alive by its loop.
                    if not self._wake.wait(timeout=IDLE_S) and not self._waiting:
                        self._thread = None
                        return
                joining = []
                while self._waiting and len(self._rows) + len(joining) < self.max_batch:
                    row = self._waiting.popleft()
                    if not row.future.cancelled():  # futures stay cancellable while they run
                        joining.append(row)
            try:
                with self._lock, torch.inference_mode():
                    if joining:
                        self._prefill(joining)
                    self._drop_finished()
                    if self._rows:
                        self._decode()
                        self._drop_finished()
            except BaseException as exc:  # noqa: BLE001 (every caller of the batch hears of it)
                for row in self._rows + joining:
                    settle(row.future, exc)
                self._rows, self._cache, self._mask, self._next = [], None, None, None

    # --- the batch ------------------------------------------------------------------------

    def _prefill(self, rows: list[Row]) -> None:
        width = max(len(r.prompt) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt) :] = 1
        cache = DynamicCache()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )  # fmt: skip  (the cache is filled in place)
        first = out.logits[:, -1, :].argmax(-1)
        for r, token in zip(rows, first.tolist(), strict=True):
            r.add(token)
        self._merge(rows, cache, mask, first.unsqueeze(-1))

    def _merge(self, rows: list[Row], cache: DynamicCache, mask: torch.Tensor, nxt: torch.Tensor) -> None:
        if not self._rows:
            self._rows, self._cache, self._mask, self._next = rows, cache, mask, nxt
            return
        width = max(self._mask.shape[1], mask.shape[1])

        def left(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            pad = width - t.shape[-dim_from_end]
            if pad == 0:
                return t
            spec = [0, 0] * (dim_from_end - 1) + [pad, 0]
            return F.pad(t, spec)

        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([left(mine.keys, 2), left(theirs.keys, 2)])
            mine.values = torch.cat([left(mine.values, 2), left(theirs.values, 2)])
        self._mask = torch.cat([left(self._mask, 1), left(mask, 1)])
        self._next = torch.cat([self._next, nxt])
        self._rows = self._rows + rows

    def _decode(self) -> None:
        positions = self._mask.sum(-1, keepdim=True)  # the next token's position in its own row
        self._mask = torch.cat([self._mask, torch.ones((len(self._rows), 1), dtype=torch.long)], dim=1)
        out = self.model(input_ids=self._next, attention_mask=self._mask, position_ids=positions, cache=self._cache,
                         use_cache=True, logits_to_keep=1)  # fmt: skip
        chosen = out.logits[:, -1, :].argmax(-1)
        for r, token in zip(self._rows, chosen.tolist(), strict=True):
            r.add(token)
        self._next = chosen.unsqueeze(-1)
        self.steps += 1

    def _drop_finished(self) -> None:
        keep = []
        for i, r in enumerate(self._rows):
            if r.future.cancelled():
                continue
            if r.tokens and (r.tokens[-1] in self.eos_ids or len(r.tokens) >= r.budget):
                settle(r.future, r.tokens)
                continue
            keep.append(i)
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._mask, self._next = [], None, None, None
            return
        index = torch.tensor(keep)
        self._rows = [self._rows[i] for i in keep]
        self._mask, self._next = self._mask[index], self._next[index]
        start = int((self._mask.cumsum(-1) == 0).sum(-1).min())  # columns every row pads
        self._mask = self._mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]
