"""transformers causal language models: load a card's weights (prsm/weights.py finds the folder),
then generate; plans are decoded under their JSON schema (prsm/backends/guided.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prsm.backends.guided import PlanDecoder
from prsm.errors import ModelCallFailed
from prsm.storage.base import BlockStore
from prsm.types import PLAN_SCHEMA_NAME, ModelCall, ModelOutput
from prsm.weights import resolve_weights


class CausalLMBackend:
    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        # One generate at a time per model: on a few CPU cores parallel generates only thrash.
        self._lock = threading.Lock()
        self._plan_decoder = None

    @classmethod
    def load(
        cls, weights: str, model_dir: Path, num_threads: int | None = None, store: BlockStore | None = None
    ):
        if num_threads:
            torch.set_num_threads(num_threads)
        folder = resolve_weights(weights, model_dir, store)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return cls(model, tokenizer)

    def generate(self, messages: list[dict], max_new_tokens: int) -> ModelOutput:
        if self.tokenizer.chat_template:
            inputs = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:
            text = "\n".join(str(m.get("content", "")) for m in messages)
            inputs = self.tokenizer(text, return_tensors="pt")
        prompt_len = inputs["input_ids"].shape[1]
        pad_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id
            )
        new_tokens = output[0][prompt_len:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return ModelOutput(text=text, tokens_in=int(prompt_len), tokens_out=int(len(new_tokens)))

    def generate_plan(self, messages: list[dict], max_tasks: int) -> ModelOutput:
        """A TaskPlan as JSON, decoded under the plan schema (prsm/backends/guided.py)."""
        with self._lock, torch.inference_mode():
            if self._plan_decoder is None:
                self._plan_decoder = PlanDecoder(self.model, self.tokenizer, max_tasks)
            self._plan_decoder.max_tasks = max_tasks
            text = self._plan_decoder.generate(messages)
        return ModelOutput(text=text, tokens_out=len(self.tokenizer.encode(text, add_special_tokens=False)))

    async def run(self, call: ModelCall) -> ModelOutput:
        if call.response_format:
            schema = (call.response_format.get("json_schema") or {}).get("name")
            if call.response_format.get("type") != "json_schema" or schema != PLAN_SCHEMA_NAME:
                raise ModelCallFailed(
                    f"local models decode only the {PLAN_SCHEMA_NAME!r} json_schema", "response_format"
                )
            max_tasks = int(call.response_format["json_schema"].get("max_tasks", 12))
            return await asyncio.to_thread(self.generate_plan, list(call.messages), max_tasks)
        return await asyncio.to_thread(self.generate, list(call.messages), call.max_new_tokens)
