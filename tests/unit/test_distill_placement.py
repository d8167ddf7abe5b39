"""A distillation job fits what the cluster has free, or stops at once saying what it needs
(issue 13: on a 2-CPU head beside the app, a 2-CPU worker waited forever)."""

from __future__ import annotations

import pytest

from prsm.distill.job import fit_workers
from prsm.distill.spec import DistillSpec
from prsm.errors import ClusterTooSmall


def spec(**kw) -> DistillSpec:
    return DistillSpec(teacher="smollm2-135m-instruct", **kw)


def test_by_default_a_worker_takes_what_the_app_leaves_free():
    # The embedded app on a 2-CPU head holds 0.8 CPU (its replicas' reservations).
    assert fit_workers(spec(), [{"CPU": 1.2}], 2) == 1.2
    assert fit_workers(spec(workers=2), [{"CPU": 1.0}, {"CPU": 1.0}], 4) == 1.0
    assert fit_workers(spec(), [{"CPU": 2.0}], 2) == 2.0  # alone on the machine: all of it


def test_a_job_that_cannot_be_placed_says_what_it_needs_and_what_is_free():
    with pytest.raises(ClusterTooSmall) as refused:
        fit_workers(spec(cpus_per_worker=2), [{"CPU": 1.2}], 2)
    message = str(refused.value)
    assert "1 worker(s) of 2 CPU" in message and "1.2 of 2 CPU free" in message
    assert refused.value.field == "cpus_per_worker"


def test_a_worker_must_fit_on_one_node():
    with pytest.raises(ClusterTooSmall, match="2 worker"):
        fit_workers(spec(workers=2, cpus_per_worker=1.5), [{"CPU": 2.0}, {"CPU": 1.0}], 4)
    assert fit_workers(spec(workers=2, cpus_per_worker=1.0), [{"CPU": 2.0}, {"CPU": 0.5}], 4) == 1.0


def test_nothing_free_and_no_gpu_are_refused():
    with pytest.raises(ClusterTooSmall, match="0 of 2 CPU free"):
        fit_workers(spec(), [{"CPU": 0.0}], 2)
    with pytest.raises(ClusterTooSmall, match="GPU"):
        fit_workers(spec(use_gpu=True), [{"CPU": 2.0}], 2)
    assert fit_workers(spec(use_gpu=True), [{"CPU": 2.0, "GPU": 1.0}], 2) == 2.0
