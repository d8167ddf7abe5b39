"""Shared fixtures: settings in a fresh data folder, the services built from them (the same way
every PRSM process builds them), a migrated database with the shipped model cards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prsm.settings import apply_ray_env

apply_ray_env()  # before any test starts Ray: the same Ray environment as `prsm up`

# Converted default-model weights are shared by every test run and by `make demo` (the default
# PRSM_DATA_DIR is ~/.prsm): the conversion takes ~20 s and its result never changes.
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))


@pytest.fixture
def settings(tmp_path):
    from prsm.settings import Settings

    return Settings(data_dir=tmp_path / "data", model_dir=MODEL_DIR, _env_file=None)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A database migrated to the newest revision once per session; each test gets a copy."""
    from prsm.db.engine import upgrade

    path = tmp_path_factory.mktemp("migrated") / "prsm.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def services(settings, migrated_sqlite):
    import sqlite3

    from prsm.services import Services

    settings.data_dir.mkdir(parents=True)
    with sqlite3.connect(migrated_sqlite) as source, sqlite3.connect(settings.data_dir / "prsm.db") as copy:
        source.backup(copy)  # a consistent copy, whatever is still in the write-ahead log
    with Services(settings) as services:
        yield services


@pytest.fixture
def db(services):
    return services.db


@pytest.fixture
def registry(services):
    services.registry.ensure_defaults()
    return services.registry


def orchestrator(services, router, models):
    """NWTN as the Serve app wires it (prsm/nwtn/remote.py), with in-process router and models
    behind the same batching clients; `alice` holds 1 FTNS."""
    import asyncio
    from functools import partial

    from prsm.nwtn.orchestrator import Orchestrator
    from prsm.nwtn.remote import Coalescer, ModelClient, RouterClient

    rank = RouterClient(lambda requests: asyncio.to_thread(router.rank_many, [r[:3] for r in requests]))
    call = ModelClient(
        heavy=lambda m: partial(models.run, m),
        light=lambda m: partial(models.run_many, m),
        heavy_stream=lambda m: partial(models.stream, m),
    )
    services.ledger.open_account("alice")
    services.ledger.mint("alice", 10**18, "faucet-alice")
    similar = Coalescer(lambda pairs: asyncio.to_thread(router.similarity, pairs))
    return Orchestrator(
        services.settings, services.registry, services.sessions, services.billing, rank, call,
        similarity=lambda a, b: similar.call((a, b)),
    )  # fmt: skip


def save_tiny_llama(folder: Path, tokenizer, hidden: int = 32) -> Path:
    """A tiny random-init Llama (seeded) with `tokenizer`: right for tests of loading,
    generating and training, in a fraction of a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
