"""Unit tests never start Ray and never load a real model: domain logic is tested in-process,
in milliseconds, with small fakes where the model's own behaviour is not under test."""

import pytest

from tests.conftest import orchestrator
from tests.fakes import EchoLM, HashingEmbedder


@pytest.fixture(autouse=True, scope="session")
def _no_ray():
    import ray

    def refuse(*_args, **_kwargs):
        raise RuntimeError("unit tests must not start Ray; put this test under tests/integration")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "init", refuse)
        yield


@pytest.fixture(scope="session")
def embedder():
    return HashingEmbedder()


@pytest.fixture
def models(services, registry):
    """The shipped models in this process; the general language model is a fake."""
    from prsm.registry import DEFAULT_MODEL_ID

    services.models.host(DEFAULT_MODEL_ID, EchoLM())
    return services.models


@pytest.fixture
def nwtn(services, registry, embedder, models):
    from prsm.nwtn.route import Router

    return orchestrator(services, Router(registry, embedder), models)
