"""The distillation loop (prsm/distill/train.py) on a CUDA GPU and on the same machine's CPU, in
a plain process (Ray's wheel is too large to carry to the lent GPU machines): the loss falls
alike, a run stopped after step 15 resumes from its step-10 checkpoint and ends with the same
weights, and the step time on each.

    python benchmarks/distill_cuda.py --teacher-folder DIR    # DIR: a small transformers model
Writes distill_cuda.json to $OUT if set (the lent machine), else to benchmarks/results/.
Needs torch, transformers and pydantic; no Ray, no database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-folder", required=True)
    parser.add_argument("--quick", action="store_true", help="the same (it takes about a minute)")
    args = parser.parse_args()

    import torch

    from prsm.distill.train import STATE, Context, train

    if not torch.cuda.is_available():
        sys.exit("no CUDA device here")
    generator = torch.Generator().manual_seed(0)
    items = [(torch.randint(10, 49000, (96,), generator=generator).tolist(), 24) for _ in range(64)]
    config = {
        "teacher_folder": args.teacher_folder, "teacher_weights": None, "settings": {},
        "student_overrides": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                              "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32},
        "items": items, "pad": 0, "loss": "forward_kl", "temperature": 1.0, "beta": 0.5, "ce_weight": 0.5,
        "steps": 40, "batch_size": 16, "lr": 1e-2, "seed": 0, "checkpoint_every": 10, "threads": 4,
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="distill-cuda-"))
    result = {
        "benchmark": "distill_cuda",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    for device in ("cuda", "cpu"):
        losses: list[float] = []
        started = time.perf_counter()
        metrics = train(config, Context(work / device, progress=_collect(losses), device=device))
        result[device] = {"loss_first5": sum(losses[:5]) / 5, "loss_last5": sum(losses[-5:]) / 5,
                          "step_s": metrics["step_time_s"], "wall_s": time.perf_counter() - started}  # fmt: skip

    class Stop(Exception):
        pass

    def stop(step: int, loss: float) -> None:
        if step == 15:
            raise Stop

    with contextlib.suppress(Stop):
        train(config, Context(work / "resume", progress=stop, device="cuda"))
    resumed = train(config, Context(work / "resume", device="cuda"))
    a = torch.load(work / "cuda" / STATE, map_location="cpu")["student"]
    b = torch.load(work / "resume" / STATE, map_location="cpu")["student"]
    result["resumed_from_step"] = resumed["resumed_from"]
    result["resume_max_abs_diff"] = max((a[k] - b[k]).abs().max().item() for k in a)
    result["cpu_over_cuda_step_ratio"] = result["cpu"]["step_s"] / result["cuda"]["step_s"]
    result["ok"] = (
        result["cuda"]["loss_last5"] < 0.8 * result["cuda"]["loss_first5"]
        and result["resumed_from_step"] == 10
        and result["resume_max_abs_diff"] < 1e-3
    )
    print(json.dumps(result, indent=2))
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_cuda.json").write_text(json.dumps(result, indent=2) + "\n")


def _collect(losses: list[float]):
    return lambda step, loss: losses.append(loss)


if __name__ == "__main__":
    main()
