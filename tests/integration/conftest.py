"""Real services and models, started once per test session: a private PostgreSQL cluster, a
local Ray with the PRSM Serve app, the real embedder and tokenizer (the default model's
conversion included)."""

from __future__ import annotations

import time
from dataclasses import dataclass
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


@dataclass
class App:
    """The running app: its URL, its settings, and API keys by name (see `prsm_app`)."""

    base_url: str
    settings: object
    keys: dict[str, str]
    metrics_port: int  # Ray's Prometheus endpoint (PRSM's and Serve's series)

    def client(self, key: str = "alice", **kwargs) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.base_url, timeout=300, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def prsm_app(tmp_path_factory):
    """The whole Serve app on a local Ray, on a free port, with keys: `alice` (owner, 1 FTNS),
    `bob` (owner, 1 FTNS), `erin` (user, 1 FTNS), `frank` (user, no funds), `operator`."""
    import os

    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings

    port = free_port()
    # Remote-endpoint cards in the tests point at this app itself: the operator allows it. Two
    # ingress replicas: per-key limits and everything else must hold across them.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("prsm-app"), model_dir=MODEL_DIR, port=port, _env_file=None,
        egress_allow=[f"127.0.0.1:{port}"], nwtn_replicas=2,
        query_deadline_s=60, abandoned_after_s=75, sweep_every_s=5,  # test_failures.py waits on these
        storage_quota_bytes=2_000_000, grade_share=1.0,  # every sub-task a reference covers is graded
    )  # fmt: skip
    keys = {}
    with Services.from_settings(settings, upgrade=True) as services:
        for name, role, funds in (("alice", "owner", 10**18), ("bob", "owner", 10**18), ("erin", "user", 10**18),
                                  ("frank", "user", 0), ("operator", "operator", 0)):  # fmt: skip
            keys[name] = services.keys.create(name, role)[0]
            if funds:
                services.ledger.mint(name, funds, f"test-faucet-{name}")
    os.environ["PRSM_HEADER_TIMEOUT_S"] = "3"  # read by Serve's proxy (prsm/api/proxy.py)
    metrics_port = free_port()
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", _metrics_export_port=metrics_port)
    serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
    serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
    deadline = time.monotonic() + 120
    while httpx.get(f"{settings.base_url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the app never became healthy"
        time.sleep(0.5)
    yield App(settings.base_url, settings, keys, metrics_port)
    serve.shutdown()
    ray.shutdown()
