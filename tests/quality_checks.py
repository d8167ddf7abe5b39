"""Quality totals under concurrency, run on SQLite (tests/unit) and PostgreSQL (tests/integration)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from prsm import quality


def check_concurrent_grades_are_all_counted(services) -> None:
    """Eight writers grading two models in opposite orders at once: every grade is counted once
    in each total, and none deadlocks."""
    engine = services.db.engine

    def grade(worker: int) -> None:
        models = ["model-a", "model-b"] if worker % 2 else ["model-b", "model-a"]
        for i in range(25):
            with engine.begin() as conn:
                quality.record(
                    conn, [quality.Grade(m, "general", (i % 5) / 4, "tool", cluster="c1") for m in models]
                )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(grade, range(8)))
    measured = services.registry.measured_quality()
    for model in ("model-a", "model-b"):
        for cluster in ("", "c1"):  # a cluster's grade counts for its capability too
            est = measured[model][("general", cluster)]
            assert est.n == 200 and est.total == pytest.approx(8 * 5 * (0 + 0.25 + 0.5 + 0.75 + 1))
