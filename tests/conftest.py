"""Shared fixtures: a migrated SQLite database per test, the real embedder once per session."""

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


@pytest.fixture
def db(settings):
    from prsm.db.engine import make_engine, session_factory, upgrade

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def registry(db):
    from prsm.registry import Registry

    reg = Registry(db)
    reg.ensure_defaults()
    return reg


def save_tiny_llama(folder: Path, hidden: int = 32) -> Path:
    """A tiny random-init Llama (seeded) with the real SmolLM2 tokenizer, chat template included:
    right for tests of loading, generating and training, in a fraction of a second."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prsm.backends.causal_lm import resolve_weights
    from prsm.registry import DEFAULT_WEIGHTS

    tokenizer = AutoTokenizer.from_pretrained(resolve_weights(DEFAULT_WEIGHTS, MODEL_DIR))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def embedder():
    from prsm.nwtn.embed import Embedder

    return Embedder()


@pytest.fixture
def nwtn(settings, registry, db, embedder):
    """The orchestrator with in-process router and models (no Ray); `alice` holds 1 FTNS."""
    from prsm.backends import LocalModels
    from prsm.nwtn.orchestrator import Orchestrator
    from prsm.nwtn.route import Router
    from prsm.sessions import SessionStore
    from prsm.storage import open_store

    router = Router(registry, embedder)
    models = LocalModels(registry, settings.resolved_model_dir, open_store(settings))

    async def rank(task, open_circuits):
        return router.rank(task, open_circuits)

    store = SessionStore(db)
    store.ledger.open_account("alice")
    store.ledger.mint("alice", 10**18, "faucet-alice")
    return Orchestrator(settings, registry, store, rank, models.call)
