"""What a distillation job is asked to do, validated before any worker starts.

`DistillSpec` checks each argument on its own (pydantic: types, ranges); `check` then checks them
together against the marketplace, the store and the models (the teacher is a registered
transformers model, the student is smaller and shares its vocabulary, the data is not empty).
Every refusal is an InvalidInput naming the argument, so `prsm distill` exits 1 with the reason
and `jobs/distill.py` fails before Ray Train starts a worker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prsm.errors import InvalidInput
from prsm.storage.cid import CID
from prsm.types import ACCOUNT_ID_PATTERN, MODEL_ID_PATTERN

BUILTIN_DATA = "builtin:science"
BUILTIN_PROMPTS = Path(__file__).with_name("science_prompts.jsonl")

# Student presets: overrides on the teacher's config (same vocabulary, tokenizer and family).
# "smollm2-15m" from SmolLM2-135M-Instruct: 4 layers of width 256 with the teacher's 49,152-token
# vocabulary, tied embeddings: 15.7M parameters (12.6M of them the embedding).
PRESETS: dict[str, dict] = {
    "smollm2-15m": {
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "tie_word_embeddings": True,
    },
}


class DistillSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(min_length=1, description="id of a registered transformers model")
    student: str = Field(
        default="smollm2-15m",
        description="a preset name, or a JSON object (or .json file) of overrides on the teacher's config",
    )
    data: str = Field(default=BUILTIN_DATA, description=f"{BUILTIN_DATA} or the CID of a JSONL prompt set")
    name: str | None = Field(default=None, pattern=MODEL_ID_PATTERN, description="the student's model id")
    owner: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="account paid for the student (default: the teacher's owner)",
    )
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        default="forward_kl", description="forward_kl, reverse_kl or jsd (generalised JSD, see --beta)"
    )
    temperature: float = Field(default=1.0, gt=0, le=20, description="softens both distributions")
    beta: float = Field(default=0.5, ge=0, le=1, description="jsd: 0 = forward KL ... 1 = reverse KL")
    ce_weight: float = Field(
        default=0.5, ge=0, le=1, description="share of cross-entropy on the teacher's tokens"
    )
    steps: int = Field(default=300, ge=1, le=1_000_000, description="optimizer steps")
    batch_size: int = Field(default=8, ge=1, le=4096, description="sequences a step, per worker")
    lr: float = Field(default=2e-3, gt=0, le=1, description="peak learning rate (AdamW, warm-up, cosine)")
    max_len: int = Field(default=192, ge=8, le=8192, description="tokens per training sequence")
    max_new_tokens: int = Field(default=96, ge=1, le=2048, description="teacher continuation length")
    held_out: float = Field(default=0.2, gt=0, lt=1, description="share of prompts kept for evaluation")
    workers: int = Field(default=1, ge=1, le=1024, description="Ray Train workers (DDP)")
    use_gpu: bool = Field(default=False, description="one GPU a worker")
    cpus_per_worker: float | None = Field(
        default=None,
        gt=0,
        le=1024,
        description="CPUs each training worker asks of Ray (default: the CPUs free now, shared by the workers)",
    )
    checkpoint_every: int = Field(default=100, ge=1, description="steps between checkpoints (and reports)")
    price_per_1k_tokens: int | None = Field(
        default=None,
        ge=0,
        description="the student's price in base units (default: the teacher's x size ratio)",
    )
    speed_tokens: int = Field(
        default=32, ge=1, le=1024, description="new tokens a prompt when timing generation"
    )
    seed: int = 0

    @field_validator("data")
    @classmethod
    def _data(cls, value: str) -> str:
        if value == BUILTIN_DATA:
            return value
        try:
            return str(CID.parse(value))
        except InvalidInput as exc:
            raise ValueError(f"{BUILTIN_DATA} or a CID: {exc.message}") from None

    def student_overrides(self) -> dict:
        if self.student in PRESETS:
            return dict(PRESETS[self.student])
        text = self.student
        if text.endswith(".json"):
            try:
                text = Path(text).read_text()
            except OSError as exc:
                raise InvalidInput(f"cannot read {self.student}: {exc}", "student") from None
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidInput(
                f"{self.student!r} is not a preset ({', '.join(PRESETS)}), a JSON object or a .json file",
                "student",
            ) from None
        if not isinstance(overrides, dict):
            raise InvalidInput("the student is a JSON object of config overrides", "student")
        return overrides

    def run_name(self) -> str:
        """The same spec gives the same run: submitting a killed job again resumes it."""
        fields = self.model_dump(
            exclude={
                "workers",
                "use_gpu",
                "cpus_per_worker",
                "checkpoint_every",
                "name",
                "owner",
                "price_per_1k_tokens",
                "speed_tokens",
            }
        )
        fields["student"] = self.student_overrides()
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
        return f"distill-{self.teacher}-{digest}"


def student_config(teacher_config, overrides: dict):
    """The teacher's config with the student's overrides (the same family and vocabulary unless
    the overrides change them)."""
    data = teacher_config.to_dict()
    data.pop("quantization_config", None)
    unknown = [k for k in overrides if k not in data and k != "head_dim"]
    if unknown:
        raise InvalidInput(f"the teacher's config has no field {unknown[0]!r}", "student")
    data.update(overrides)
    try:
        return type(teacher_config).from_dict(data)
    except Exception as exc:  # noqa: BLE001 (transformers' config validators raise several kinds)
        raise InvalidInput(f"the student config is invalid: {exc}", "student") from None


def count_parameters(config) -> int:
    """Parameters of a model built from `config`, without allocating its weights."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())
