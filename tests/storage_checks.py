"""Rules every block store must hold: run on the local store (unit) and on the IPFS backend
against a real IPFS node (integration), the same checks."""

from __future__ import annotations

import io
import os

import pytest

from prsm.errors import InvalidInput, NotFound
from prsm.storage.base import BlockStore
from prsm.storage.cid import CHUNK, cid_of

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK]
BAD_CIDS = [
    "",
    "Qm123",
    "bafkbad",
    "b" + "a" * 300,
    "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
]


def check_put_then_get_returns_the_bytes(store: BlockStore, tmp_path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    cid = store.put(data)
    assert cid == cid_of(data)  # the same CID whatever the backend
    assert store.put(path) == cid and store.put(io.BytesIO(data)) == cid
    assert store.read(cid) == data and store.has(cid)


def check_pins_keep_content_through_gc(store: BlockStore) -> None:
    kept, dropped = store.put(os.urandom(CHUNK + 1)), store.put(os.urandom(CHUNK + 2))
    store.pin(kept)
    store.gc()
    assert store.read(kept) and not store.has(dropped)
    assert kept in [row["cid"] for row in store.ls()]
    assert next(r for r in store.ls() if r["cid"] == kept)["blocks"] == 3
    store.unpin(kept)
    with pytest.raises(NotFound):
        store.unpin(kept)
    store.gc()
    assert not store.has(kept)


def check_an_invalid_cid_is_refused_naming_the_field(store: BlockStore, bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        store.get(bad)
    assert info.value.field == "cid"


def check_a_missing_cid_is_not_found_quickly(store: BlockStore) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(NotFound):
        store.get(cid_of(os.urandom(16)))
    assert time.monotonic() - started < 20


def check_a_folder_round_trips(store: BlockStore, tmp_path) -> None:
    folder = tmp_path / "weights"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(2 * CHUNK + 1))
    (folder / "sub" / "tokenizer.json").write_text("{}")
    cid = store.put_dir(folder)
    assert store.is_dir(cid) and store.stat(cid)["blocks"] == 1 + 4 + 1 + 1
    store.get_dir(cid, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (
        folder / "model.safetensors"
    ).read_bytes()
    assert (tmp_path / "out" / "sub" / "tokenizer.json").read_text() == "{}"
    with pytest.raises(InvalidInput):  # a folder is not a file's bytes
        store.get(cid)
    with pytest.raises(InvalidInput):
        store.get_dir(store.put(b"a file"), tmp_path / "nowhere")
