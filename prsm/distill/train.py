"""The training loop: one function for a Ray Train worker and for a plain process.

Each step draws its batch from (seed, step, rank) and its learning rate from the step alone, so
a run resumed from a checkpoint takes exactly the steps it would have taken (tested). A
checkpoint (every `checkpoint_every` steps, and at the end) holds the student's and the
optimizer's state and the step; Ray Train keeps it in the run's storage, and a job submitted
again with the same spec (the same run name) continues from the last one. Reports are rare (one
per checkpoint: each costs about 2 s here); progress goes to a small actor the driver polls.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from prsm.distill.data import batch
from prsm.distill.losses import distillation_loss
from prsm.distill.spec import student_config
from prsm.services import Services
from prsm.weights import resolve_weights

STATE = "state.pt"
FINAL = "student"


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5 % of steps, then cosine decay to 10 % of the peak."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_indices(seed: int, step: int, rank: int, count: int, size: int) -> list[int]:
    rng = random.Random(f"{seed}:{step}:{rank}")
    return [rng.randrange(count) for _ in range(size)]


class Context:
    """What the loop needs from its host: a plain process (this class) or Ray Train (below)."""

    rank, world = 0, 1

    def __init__(self, checkpoint_dir: Path | None = None, progress=None, device: str = "cpu"):
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self._device = torch.device(device)

    def device(self) -> torch.device:
        return self._device

    def prepare(self, model):
        return model

    def restore(self) -> dict | None:
        path = self.checkpoint_dir / STATE if self.checkpoint_dir else None
        return torch.load(path, map_location="cpu", weights_only=False) if path and path.exists() else None

    def save(self, metrics: dict, folder: Path | None) -> None:
        """Replace the checkpoint folder with `folder`'s copy (copied aside, then swapped)."""
        if self.checkpoint_dir is None or folder is None:
            return
        partial = self.checkpoint_dir.with_name(f"{self.checkpoint_dir.name}.partial")
        old = self.checkpoint_dir.with_name(f"{self.checkpoint_dir.name}.old")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        if self.checkpoint_dir.exists():
            os.replace(self.checkpoint_dir, old)
        os.replace(partial, self.checkpoint_dir)
        shutil.rmtree(old, ignore_errors=True)

    def tick(self, step: int, loss: float) -> None:
        if self.progress is not None:
            self.progress(step, loss)


class RayContext(Context):
    def __init__(self, progress_actor=None):
        import ray.train

        super().__init__()
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.actor = progress_actor

    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def prepare(self, model):
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def restore(self) -> dict | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return torch.load(Path(folder) / STATE, map_location="cpu", weights_only=False)

    def save(self, metrics: dict, folder: Path | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder is not None else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def tick(self, step: int, loss: float) -> None:
        if self.actor is not None and self.rank == 0:
            self.actor.update.remote(step, loss)


def load_models(config: dict, device: torch.device, with_teacher: bool = True):
    """The teacher (frozen; None if not needed) and a fresh student built from the teacher's
    config plus the student's overrides, seeded: every worker starts from the same weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = teacher_folder(config)
    teacher = None
    if with_teacher:
        teacher = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        teacher.eval().requires_grad_(False).to(device)
    torch.manual_seed(config["seed"])
    overrides = student_config(AutoConfig.from_pretrained(folder), config["student_overrides"])
    return teacher, AutoModelForCausalLM.from_config(overrides).to(device)


def teacher_folder(config: dict) -> str:
    """The teacher's folder on this worker: the driver's path when this node has it (one machine,
    shared storage), else resolved here by its weights reference (fetched by CID from this
    node's store or IPFS, or converted from its package), as a model replica would."""
    if Path(config["teacher_folder"]).is_dir():
        return config["teacher_folder"]
    with Services.from_settings(config["settings"]) as services:
        model_dir = services.settings.resolved_model_dir
        return str(resolve_weights(config["teacher_weights"], model_dir, services.store))


def train(config: dict, ctx: Context) -> dict:
    """Run the steps left in this run; return the metrics of its last report."""
    began_run = time.perf_counter()
    torch.set_num_threads(config.get("threads") or torch.get_num_threads())
    device = ctx.device()
    ce_only = config["ce_weight"] >= 1.0  # the baseline: no teacher logits at all
    teacher, student = load_models(config, device, with_teacher=not ce_only)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config["lr"], weight_decay=0.0)
    start = 0
    state = ctx.restore()
    if state is not None:
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"resumed from the checkpoint at step {start}", flush=True)
    model = ctx.prepare(student)
    loaded_s = time.perf_counter() - began_run
    loop_started = time.perf_counter()
    items = config["items"]
    steps, every = config["steps"], config["checkpoint_every"]
    step_times: list[float] = []
    losses: list[float] = []
    metrics: dict = {"step": start}
    for step in range(start, steps):
        began = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, config["lr"])
        picked = [
            items[i] for i in batch_indices(config["seed"], step, ctx.rank, len(items), config["batch_size"])
        ]
        inputs = {k: v.to(device) for k, v in batch(picked, config["pad"]).items()}
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, :-1]
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                ).logits[:, :-1]
        loss = distillation_loss(
            logits, teacher_logits, inputs["input_ids"][:, 1:], inputs["loss_mask"], config["loss"],
            config["temperature"], config["beta"], config["ce_weight"],
        )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step_times.append(time.perf_counter() - began)
        losses.append(loss.item())
        ctx.tick(step + 1, losses[-1])
        done = step + 1 == steps
        if (step + 1) % every == 0 or done:
            metrics = {
                "step": step + 1,
                "loss": statistics.fmean(losses[-every:]),
                "step_time_s": statistics.median(step_times),
                "steps_timed": len(step_times),
                "resumed_from": start,
                "load_s": loaded_s,
                "loop_s": time.perf_counter() - loop_started,
                "step_times_s": step_times[:64],  # the first steps: compared across hosts
            }
            _checkpoint(ctx, metrics, student, optimizer, step + 1, config if done else None)
    return metrics


def _checkpoint(
    ctx: Context, metrics: dict, student, optimizer, step: int, final_config: dict | None
) -> None:
    """Every worker reports (Ray Train needs it); only rank 0 writes a checkpoint. The last one
    also holds the student as a transformers folder (safetensors + tokenizer)."""
    if ctx.rank != 0:
        ctx.save(metrics, None)
        return
    with tempfile.TemporaryDirectory(prefix="prsm-ckpt-") as folder:
        folder = Path(folder)
        torch.save({"student": student.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
                   folder / STATE)  # fmt: skip
        if final_config is not None:
            from transformers import AutoTokenizer

            student.save_pretrained(folder / FINAL)
            AutoTokenizer.from_pretrained(teacher_folder(final_config)).save_pretrained(folder / FINAL)
        ctx.save(metrics, folder)


def train_loop_per_worker(config: dict) -> None:
    """Ray Train's entry point on every worker."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    train(config, RayContext(config.get("progress_actor")))
