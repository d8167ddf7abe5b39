"""PRSM's CIDs against a real IPFS node's: the test vectors come from the node, not from our code."""

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
    params = {"cid-version": 1, "pin": "false", "chunker": "size-1024"}
    response = httpx.post(f"{ipfs}/add", params=params, files=files, timeout=600)
    assert ours == str(CID.parse(response.json()["Hash"]))


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


def test_pins_keep_content_through_gc_ipfs(store):
    storage_checks.check_pins_keep_content_through_gc(store)


@pytest.mark.parametrize("bad", storage_checks.BAD_CIDS)
def test_an_invalid_cid_is_refused_naming_the_field_ipfs(store, bad):
    storage_checks.check_an_invalid_cid_is_refused_naming_the_field(store, bad)


def test_a_missing_cid_is_not_found_quickly_ipfs(store):
    storage_checks.check_a_missing_cid_is_not_found_quickly(store)
