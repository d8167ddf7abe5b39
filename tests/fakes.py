"""Small stand-ins for the models, for unit tests whose behaviour under test is not the model's
own (routing rules, orchestration, pricing, persistence). The real models (all-MiniLM-L6-v2,
SmolLM2) run in tests/integration."""

from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np

from prsm.types import ModelCall, ModelOutput


class HashingEmbedder:
    """Bag-of-words vectors: each word hashed (stably) into one of 384 dimensions, unit length.
    Texts sharing words are similar; nothing is learned, nothing is loaded."""

    name = "hashing-embedder"
    dim = 384

    def embed_many(self, texts: list[str]) -> list[np.ndarray]:
        vectors = []
        for text in texts:
            vector = np.zeros(self.dim, dtype=np.float32)
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vector[
                    int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % self.dim
                ] += 1
            norm = float(np.linalg.norm(vector))
            vectors.append(vector / norm if norm else vector)
        return vectors


class EchoLM:
    """A general language model that answers every question the same way, with token counts:
    where NWTN's handling of an answer is under test, not the answer."""

    async def run(self, call: ModelCall) -> ModelOutput:
        question = call.last_user_text
        text = f"A short answer to: {question}"
        tokens_in = sum(len(str(m.get("content", "")).split()) for m in call.messages) + 8
        return ModelOutput(
            text=text, tokens_in=tokens_in, tokens_out=min(len(text.split()), call.max_new_tokens)
        )

    async def stream(self, call: ModelCall):
        """The same answer, a word a piece (a streamed call): the pieces join to `run`'s text."""
        whole = await self.run(call)
        words = whole.text.split(" ")[: whole.tokens_out]
        for n, word in enumerate(words, 1):
            await asyncio.sleep(0.01)
            yield ModelOutput(word if n == 1 else f" {word}", whole.tokens_in, n)
