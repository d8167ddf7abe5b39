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
