"""The machine a benchmark ran on, as every results file records it."""

from __future__ import annotations

import os
import platform

import psutil


def machine(**extra: object) -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **extra,
    }
