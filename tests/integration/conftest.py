"""Real services and models, started once per test session: a private PostgreSQL cluster, a
local Ray with the PRSM Serve app, the real embedder and tokenizer (the default model's
conversion included)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_DIR, save_tiny_llama
from tests.services import free_port, private_postgres


@pytest.fixture(scope="session")
def postgres_url():
    try:
        with private_postgres() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def embedder():
    from prsm.nwtn.embed import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer and chat template (converted once)."""
    from transformers import AutoTokenizer

    from prsm.registry import DEFAULT_WEIGHTS
    from prsm.weights import resolve_weights

    tokenizer = AutoTokenizer.from_pretrained(resolve_weights(DEFAULT_WEIGHTS, MODEL_DIR))
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama", tokenizer)


@pytest.fixture(scope="session")
def prsm_app(tmp_path_factory):
    """The whole Serve app on a local Ray, on a free port; yields (base_url, settings)."""
    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("prsm-app"), model_dir=MODEL_DIR, port=free_port(), _env_file=None
    )
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
    serve.run(build_app(settings.model_dump(mode="json")), name="prsm", route_prefix="/")
    deadline = time.monotonic() + 120
    while httpx.get(f"{settings.base_url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the app never became healthy"
        time.sleep(0.5)
    with Services(settings) as services:
        for user in ("alice", "anonymous"):  # the test users pay for their queries
            services.ledger.open_account(user)
            services.ledger.mint(user, 10**18, f"test-faucet-{user}")
    yield settings.base_url, settings
    serve.shutdown()
    ray.shutdown()
