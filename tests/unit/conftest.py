"""Unit tests never start Ray: domain logic is tested in-process, in milliseconds."""

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    import ray

    def refuse(*_args, **_kwargs):
        raise RuntimeError("unit tests must not start Ray; put this test under tests/integration")

    monkeypatch.setattr(ray, "init", refuse)
