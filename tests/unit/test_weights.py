"""Model weights by CID: stored as a folder, fetched and verified into the model cache, loaded;
the shipped default model imported into the store on first use."""

import asyncio

import pytest

from prsm.backends import LocalModels, ModelCall
from prsm.registry import DEFAULT_MODEL_ID, ModelCard
from prsm.storage.artifacts import Artifacts
from prsm.storage.base import CorruptBlock, NotFound
from prsm.storage.local import LocalStore
from prsm.weights import cached_folder, import_folder, prepare_default


@pytest.fixture
def store(settings):
    with LocalStore(settings.resolved_store_dir) as s:
        yield s


def card(cid: str) -> ModelCard:
    return ModelCard(id="tiny-by-cid", kind="transformers", description="a tiny model", tags=("text",),
                     owner="carol", licence="MIT", weights=f"ipfs://{cid}")  # fmt: skip


def test_a_card_with_weights_by_cid_is_fetched_verified_cached_and_answers(
    db, registry, store, tiny_model_dir, tmp_path
):
    cid = import_folder(tiny_model_dir, store, Artifacts(db, store), "carol", licence="MIT")
    assert Artifacts(db, store).get(cid)["kind"] == "model" and cid in store.pins()
    registry.register(card(cid))
    models = LocalModels(registry, tmp_path / "cache", store)
    call = ModelCall(({"role": "user", "content": "Hi"},), max_new_tokens=3)
    out = asyncio.run(models.call("tiny-by-cid", "transformers", call))
    assert out.tokens_out == 3
    cached = cached_folder(cid, tmp_path / "cache")
    assert (cached / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert store.put_dir(cached) == cid  # the cache holds exactly the stored folder


def test_a_corrupt_weights_block_is_refused_and_nothing_is_cached(db, store, tiny_model_dir, tmp_path):
    from prsm.backends.causal_lm import resolve_weights
    from prsm.storage.cid import dag_pb_entries, dag_pb_links

    cid = import_folder(tiny_model_dir, store, Artifacts(db, store), "carol")
    weights = dict(dag_pb_entries(store.block(cid)))["model.safetensors"]  # a few MB: many leaves
    leaf = str(dag_pb_links(store.block(weights))[-1])
    pack, offset, _ = store._locate(leaf)
    with open(store.root / "packs" / pack, "r+b") as f:  # one flipped byte on disk
        f.seek(offset)
        f.write(bytes([f.read(1)[0] ^ 1]))
    with pytest.raises(CorruptBlock):
        resolve_weights(f"ipfs://{cid}", tmp_path / "cache", store)
    assert not any((tmp_path / "cache").iterdir())  # no half folder that looks loadable


def test_weights_by_a_cid_nobody_has_are_not_found_naming_the_field(store, tmp_path):
    from prsm.backends.causal_lm import resolve_weights
    from prsm.storage.cid import cid_of

    with pytest.raises(NotFound) as info:
        resolve_weights(f"ipfs://{cid_of(b'never stored')}", tmp_path, store)
    assert info.value.field == "weights"


def test_the_default_model_is_imported_into_the_store_on_first_use(settings, db):
    from prsm.registry import Registry

    weights, folder = prepare_default(settings)
    cid = weights.removeprefix("ipfs://")
    assert Registry(db).get(DEFAULT_MODEL_ID).weights == weights == f"ipfs://{cid}"
    with LocalStore(settings.resolved_store_dir) as store:
        record = Artifacts(db, store).get(cid)
        assert record["kind"] == "model" and record["licence"] == "Apache-2.0" and cid in store.pins()
        assert store.put_dir(folder) == cid  # it loads from exactly the stored folder
    assert prepare_default(settings) == (weights, folder)  # once: the second call finds it done
