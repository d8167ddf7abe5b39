"""The machine a benchmark ran on, as every results file records it; writing the results file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import psutil


def machine(**extra: object) -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **extra,
    }


def report(result: dict, path: Path, leave_out: tuple[str, ...] = ()) -> None:
    """Print each figure (but `leave_out`'s, long series kept for the file) and write them all
    to `path` (benchmarks/results/<script>.json)."""
    for key, value in result.items():
        if key not in leave_out:
            print(f"{key}: {value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
