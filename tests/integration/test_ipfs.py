"""PRSM's CIDs against a real IPFS node's: the test vectors come from the node, not from our code."""

import json
import os

import httpx
import pytest

from prsm.storage.cid import CHUNK, CID, MAX_LINKS, cid_of
from tests import storage_checks
from tests.services import ipfs_node


@pytest.fixture(scope="module")
def ipfs():
    with ipfs_node() as url:
        yield url


def node_cid(url: str, data: bytes) -> str:
    """`ipfs add --cid-version=1` through the RPC API; the answer normalised to base32."""
    files = {"file": ("f.bin", data, "application/octet-stream")}
    response = httpx.post(f"{url}/add", params={"cid-version": 1, "pin": "false"}, files=files, timeout=300)
    response.raise_for_status()
    return str(CID.parse(response.json()["Hash"]))


SIZES = [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, MAX_LINKS * CHUNK, MAX_LINKS * CHUNK + 1]


@pytest.mark.parametrize("size", SIZES)
def test_our_cid_is_the_ipfs_nodes_for_every_size(ipfs, size):
    data = os.urandom(size)
    assert cid_of(data) == node_cid(ipfs, data)


def test_a_three_level_tree_matches_too(ipfs):
    # 174 * 174 + 1 leaves of 256 KiB would be 7.4 GiB. The balanced layout does not depend on
    # the chunk size, so both sides cut 1 KiB chunks here: 30 MB make a tree three levels deep.
    import io

    from prsm.storage.cid import build, chunked

    data = os.urandom((MAX_LINKS * MAX_LINKS + 1) * 1024)
    ours = str(build(chunked(io.BytesIO(data), 1024), lambda cid, block: None)[0])
    files = {"file": ("f.bin", data, "application/octet-stream")}
    params = {"cid-version": 1, "pin": "false", "chunker": "size-1024", "only-hash": "true"}  # nothing stored
    response = httpx.post(f"{ipfs}/add", params=params, files=files, timeout=600)
    assert ours == str(CID.parse(response.json()["Hash"]))


def node_folder_cid(url: str, folder) -> str:
    """`ipfs add -r --cid-version=1 folder` through the RPC API (a directory part, then its
    files and subfolders with their paths)."""
    parts = []
    for top, dirs, names in os.walk(folder):
        rel = os.path.relpath(top, folder.parent)
        parts.append(("file", (rel, b"", "application/x-directory")))
        parts += [
            ("file", (f"{rel}/{n}", (folder.parent / rel / n).read_bytes(), "application/octet-stream"))
            for n in sorted(names)
        ]
        dirs.sort()
    response = httpx.post(f"{url}/add", params={"cid-version": 1, "pin": "false"}, files=parts, timeout=300)
    response.raise_for_status()
    by_name = {row["Name"]: row["Hash"] for row in map(json.loads, response.text.splitlines())}
    return str(CID.parse(by_name[folder.name]))


def test_a_folder_gets_the_ipfs_nodes_directory_cid(ipfs, tmp_path):
    from prsm.storage.local import LocalStore

    folder = tmp_path / "model"
    (folder / "tokenizer" / "extra").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 64}')
    (folder / "model.safetensors").write_bytes(os.urandom(3 * CHUNK + 5))
    (folder / "empty").write_bytes(b"")
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (folder / "tokenizer" / "extra" / "Z-upper.bin").write_bytes(os.urandom(10))
    with LocalStore(tmp_path / "store") as store:
        cid = store.put_dir(folder)
        assert cid == node_folder_cid(ipfs, folder)
        store.get_dir(cid, tmp_path / "copy")
    for path in folder.rglob("*"):
        copy = tmp_path / "copy" / path.relative_to(folder)
        assert copy.is_dir() if path.is_dir() else copy.read_bytes() == path.read_bytes()


# --- the IPFS backend: the same checks as the local store ------------------------------------


@pytest.fixture(scope="module")
def backend_node():
    # Its own node: the vector tests above leave ~30,000 unpinned blocks, which make gc slow.
    with ipfs_node() as url:
        yield url


@pytest.fixture
def store(backend_node):
    from prsm.storage.ipfs import IpfsStore

    with IpfsStore(backend_node, timeout_s=2) as s:
        yield s


@pytest.mark.parametrize("size", storage_checks.SIZES)
def test_put_then_get_returns_the_bytes_ipfs(store, tmp_path, size):
    storage_checks.check_put_then_get_returns_the_bytes(store, tmp_path, size)


def test_a_folder_round_trips_ipfs(store, tmp_path):
    storage_checks.check_a_folder_round_trips(store, tmp_path)


def test_pins_keep_content_through_gc_ipfs(store):
    storage_checks.check_pins_keep_content_through_gc(store)


@pytest.mark.parametrize("bad", storage_checks.BAD_CIDS)
def test_an_invalid_cid_is_refused_naming_the_field_ipfs(store, bad):
    storage_checks.check_an_invalid_cid_is_refused_naming_the_field(store, bad)


def test_a_missing_cid_is_not_found_quickly_ipfs(store):
    storage_checks.check_a_missing_cid_is_not_found_quickly(store)


# --- two PRSM nodes, each with its own IPFS node ---------------------------------------------


def test_what_one_node_adds_the_other_fetches_by_cid(tmp_path):
    """Two IPFS nodes with their swarms on loopback, connected as peers would be; one PRSM store
    on each. What A stores, B fetches by CID over bitswap (and verifies); B never had it."""
    from prsm.storage.ipfs import IpfsStore

    with ipfs_node(online=True) as url_a, ipfs_node(online=True) as url_b:
        address = httpx.post(f"{url_a}/id").json()["Addresses"][0]
        httpx.post(f"{url_b}/swarm/connect", params={"arg": address}, timeout=30).raise_for_status()
        data = os.urandom(3 * CHUNK + 11)
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "config.json").write_text('{"layers": 2}')
        with IpfsStore(url_a) as a, IpfsStore(url_b, timeout_s=20) as b:
            cid, folder_cid = a.put(data), a.put_dir(folder)
            assert b.read(cid) == data
            b.get_dir(folder_cid, tmp_path / "fetched")
            assert (tmp_path / "fetched" / "config.json").read_text() == '{"layers": 2}'
            b.pin(cid)  # B keeps its own copy: it serves the CID without A from now on
        httpx.post(f"{url_b}/swarm/disconnect", params={"arg": address}, timeout=30)
