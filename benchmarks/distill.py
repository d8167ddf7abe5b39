"""Distillation: SmolLM2-135M-Instruct -> a 15.7M-parameter student, against plain fine-tuning,
and Ray Train's per-step overhead against a plain process. All in one run.

  1. The teacher's data: its greedy continuations (64 new tokens) of the built-in science prompt
     set, split into train (70 %) and held-out (30 %: enough tokens that the agreement of the two
     students is told apart) prompts (generated once, then found in the store by CID).
  2. Distillation through Ray Train (TorchTrainer, one worker with both cores): forward KL
     mixed half and half with cross-entropy on the teacher's tokens (of the recipes tried at 80
     steps, forward KL, JSD(0.5) and a doubled learning rate, each with CE, this one did best),
     `--steps` steps of `--batch-size` sequences.
  3. Baseline: the same student architecture, the same initial weights, steps, batches and text,
     trained with plain cross-entropy on the teacher's tokens (no teacher logits), in a plain
     process.
  4. Both students evaluated against the teacher on the held-out prompts: top-1 agreement, KL,
     perplexity on the teacher's text, size ratio, CPU generation speed ratio.
  5. Ray Train overhead: the median step time of the same loop inside Ray Train (all its steps)
     and in a plain process (its first steps, run just before); Ray's fixed start-up apart, and
     the median of Ray's first steps beside it (Ray's own processes are still busy starting then).
     Target: within 1.25x.

    python benchmarks/distill.py [--quick]
Writes benchmarks/results/distill.json. Its state (database, store, runs) lives in
$PRSM_DATA_DIR/bench-distill, so the teacher's data is generated only the first time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from machine import machine  # noqa: E402  (benchmarks/machine.py)

RESULTS = REPO / "benchmarks" / "results" / "distill.json"
TEACHER = "smollm2-135m-instruct"
OVERHEAD_STEPS = 12  # plain-process steps timed; also the window of Ray's first steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 steps instead of 150")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    steps = args.steps or (24 if args.quick else 150)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prsm.distill.evaluate import evaluate
    from prsm.distill.job import prepare, train_with_ray
    from prsm.distill.spec import DistillSpec
    from prsm.distill.train import FINAL, Context, train
    from prsm.services import Services
    from prsm.settings import Settings

    base = Settings()
    settings = Settings(data_dir=base.data_dir / "bench-distill", model_dir=base.resolved_model_dir)
    spec = DistillSpec(
        teacher=TEACHER, student="smollm2-15m", steps=steps, batch_size=args.batch_size, max_len=160, held_out=0.3,
        max_new_tokens=64, checkpoint_every=steps, lr=2e-3, loss="forward_kl", ce_weight=0.5, speed_tokens=32,
    )  # fmt: skip
    started = time.perf_counter()
    with Services(settings) as services:
        plan = prepare(spec, services, generation_progress=_generation)
    prepare_s = time.perf_counter() - started
    config = plan.train_config()

    # The plain steps run right before the Ray run, so both see the machine in the same state.
    print(f"\n[1/4] the first {OVERHEAD_STEPS} distillation steps in a plain process", flush=True)
    plain_metrics = train(
        {**config, "steps": OVERHEAD_STEPS, "checkpoint_every": OVERHEAD_STEPS}, Context(None)
    )

    print(f"\n[2/4] distillation through Ray Train: {steps} steps of {spec.batch_size}", flush=True)
    shutil.rmtree(settings.data_dir / "distill" / plan.run_name, ignore_errors=True)  # fresh, not a resume
    started = time.perf_counter()
    distilled = train_with_ray(plan, progress=_training(steps))
    ray_wall_s = time.perf_counter() - started
    ray_metrics = distilled.metrics

    print(f"\n[3/4] baseline: cross-entropy only, {steps} steps, plain process", flush=True)
    baseline_dir = settings.data_dir / "baseline"
    shutil.rmtree(baseline_dir, ignore_errors=True)
    started = time.perf_counter()
    baseline_metrics = train({**config, "ce_weight": 1.0}, Context(baseline_dir))
    baseline_wall_s = time.perf_counter() - started

    print("\n[4/4] evaluating both students against the teacher on the held-out prompts", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(plan.teacher_folder)
    teacher = AutoModelForCausalLM.from_pretrained(plan.teacher_folder, dtype=torch.float32).eval()
    results = {}
    for label, folder in (("distilled", distilled.folder), ("baseline", baseline_dir / FINAL)):
        student = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        results[label] = evaluate(student, teacher, tokenizer, plan.held_out, spec.max_len, spec.speed_tokens)

    ray_step, plain_step = ray_metrics["step_time_s"], plain_metrics["step_time_s"]
    ray_first_steps = statistics.median(ray_metrics["step_times_s"][:OVERHEAD_STEPS])
    d, b = results["distilled"], results["baseline"]
    result = {
        "benchmark": "distill",
        "quick": args.quick,
        "machine": machine(torch=torch.__version__),
        "teacher": TEACHER,
        "student_preset": spec.student,
        "student_parameters": plan.student_parameters,
        "teacher_parameters": plan.teacher_parameters,
        "steps": steps,
        "batch_size": spec.batch_size,
        "train_prompts": len(plan.train),
        "held_out_prompts": len(plan.held_out),
        "data_cid": plan.data_cid,
        "prepare_s": prepare_s,
        "distilled": d,
        "baseline": b,
        "distilled_final_train_loss": ray_metrics["loss"],
        "baseline_final_train_loss": baseline_metrics["loss"],
        "distillation_wall_s": ray_wall_s,
        "baseline_wall_s": baseline_wall_s,
        "top1_agreement_distilled_vs_baseline_ratio": d["top1_agreement"] / max(b["top1_agreement"], 1e-9),
        "perplexity_baseline_over_distilled_ratio": b["perplexity"] / d["perplexity"],
        "distillation_beats_baseline": d["top1_agreement"] > b["top1_agreement"]
        and d["perplexity"] < b["perplexity"],
        "size_ratio": d["parameter_ratio"],
        "speed_ratio": d["speed_ratio"],
        "ray_step_s": ray_step,
        "plain_step_s": plain_step,
        "ray_over_plain_step_ratio": ray_step / plain_step,
        "plain_steps_timed": OVERHEAD_STEPS,
        "ray_steps_timed": ray_metrics["steps_timed"],
        "ray_first_steps_s": ray_first_steps,
        "ray_first_steps_over_plain_ratio": ray_first_steps / plain_step,
        "ray_startup_s": ray_wall_s - ray_metrics["loop_s"],
        "ray_worker_load_s": ray_metrics["load_s"],
        "plain_load_s": plain_metrics["load_s"],
        "target_step_ratio": 1.25,
    }
    print(f"\n{TEACHER} ({plan.teacher_parameters / 1e6:.1f}M) -> student ({plan.student_parameters / 1e6:.1f}M), "
          f"{steps} steps x {spec.batch_size}, {len(plan.held_out)} held-out prompts ({os.cpu_count()} cores)")  # fmt: skip
    print(f"  {'':34s} {'distilled':>12s} {'baseline (CE)':>14s}")
    print(
        f"  {'top-1 agreement with the teacher':34s} {d['top1_agreement']:12.3f} {b['top1_agreement']:14.3f}"
    )
    print(f"  {'KL(teacher || student)':34s} {d['kl']:12.3f} {b['kl']:14.3f}")
    print(f"  {'perplexity on teacher text':34s} {d['perplexity']:12.2f} {b['perplexity']:14.2f}"
          f"   (teacher {d['teacher_perplexity']:.2f})")  # fmt: skip
    print(f"  {'size ratio':34s} {d['parameter_ratio']:12.3f}")
    print(f"  {'CPU generation speed ratio':34s} {d['speed_ratio']:12.2f}x"
          f"   ({d['student_tokens_per_s']:.0f} vs {d['teacher_tokens_per_s']:.0f} tok/s)")  # fmt: skip
    print(
        f"  distillation beats the baseline on agreement and perplexity: {result['distillation_beats_baseline']}"
    )
    print(f"Ray Train step {ray_step:.3f} s (median of {ray_metrics['steps_timed']}) vs plain {plain_step:.3f} s "
          f"(median of {OVERHEAD_STEPS}): ratio {result['ray_over_plain_step_ratio']:.3f} (target <= 1.25); "
          f"Ray's first {OVERHEAD_STEPS} steps {ray_first_steps:.3f} s; Ray start-up {result['ray_startup_s']:.1f} s "
          f"(worker model load {ray_metrics['load_s']:.1f} s)")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


def _generation(done: int, total: int, seconds: float) -> None:
    print(f"  teacher data: {done}/{total} prompts in {seconds:.0f} s", flush=True)


def _training(steps: int):
    last = [0.0, -1]  # when, which step

    def show(step: int, loss: float | None) -> None:
        if step != last[1] and (time.monotonic() - last[0] > 15 or step == steps):
            last[:] = [time.monotonic(), step]
            print(f"  step {step}/{steps}" + (f"  loss {loss:.3f}" if loss is not None else ""), flush=True)

    return show


if __name__ == "__main__":
    main()
