"""The CID encoder and the local block store, without any IPFS node (the same CIDs against a
real IPFS node: tests/integration/test_ipfs.py)."""

import hashlib
import io
import os

import pytest

from prsm.errors import ArtifactConflict, CorruptBlock, InvalidCID, NotFound, TooLarge
from prsm.errors import PRSMError as PRSMErrorBase
from prsm.storage.cid import CHUNK, CID, DAG_PB, RAW, cid_of, dag_pb_links
from prsm.storage.local import LocalStore
from tests import storage_checks

# Published CIDv1 (raw leaves) of two well-known inputs; the node-made vectors for many sizes
# are in the integration test.
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO_WORLD = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


@pytest.fixture
def store(tmp_path):
    with LocalStore(tmp_path / "store") as s:
        yield s


def test_small_inputs_are_one_raw_block_whose_cid_is_the_content_hash():
    assert cid_of(b"") == EMPTY and cid_of(b"hello world") == HELLO_WORLD
    parsed = CID.parse(HELLO_WORLD)
    assert parsed.codec == RAW and parsed.digest == hashlib.sha256(b"hello world").digest()


def test_a_multi_chunk_file_is_a_balanced_dag_of_256_kib_raw_leaves(store):
    data = os.urandom(3 * CHUNK + 5)
    cid = store.put(data)
    root = CID.parse(cid)
    assert root.codec == DAG_PB
    links = dag_pb_links(store.block(cid))
    assert [link.codec for link in links] == [RAW] * 4
    assert [len(store.block(link)) for link in links] == [CHUNK, CHUNK, CHUNK, 5]
    assert str(CID.parse(cid)) == cid


def test_more_than_174_chunks_make_a_second_level(store):
    data = b"x" * (175 * 1024)  # small chunks would take too long: use a tiny chunker below
    from prsm.storage.cid import build, chunked

    blocks = {}
    root, size, _ = build(chunked(io.BytesIO(data), 1024), lambda c, b: blocks.setdefault(str(c), (c, b)))
    top = dag_pb_links(blocks[str(root)][1])
    assert size == len(data) and len(top) == 2  # a full node of 174 leaves, then one more
    assert len(dag_pb_links(blocks[str(top[0])][1])) == 174
    assert top[1].codec == DAG_PB and len(dag_pb_links(blocks[str(top[1])][1])) == 1


@pytest.mark.parametrize("size", storage_checks.SIZES)
def test_put_then_get_returns_the_bytes_from_bytes_files_and_streams(store, tmp_path, size):
    storage_checks.check_put_then_get_returns_the_bytes(store, tmp_path, size)


def test_a_folder_round_trips(store, tmp_path):
    storage_checks.check_a_folder_round_trips(store, tmp_path)


def test_a_folder_entry_that_would_escape_the_target_is_refused(store, tmp_path):
    from prsm.storage.cid import dag_pb_node, unixfs_directory

    leaf = CID.parse(store.put(b"owned"))
    evil = store.put_node(dag_pb_node([(leaf, 5, "../escaped")], unixfs_directory()))
    with pytest.raises(CorruptBlock):
        store.get_dir(evil, tmp_path / "target")
    assert not (tmp_path / "escaped").exists()


def test_pins_keep_content_through_gc(store):
    storage_checks.check_pins_keep_content_through_gc(store)


@pytest.mark.parametrize("bad", storage_checks.BAD_CIDS)
def test_an_invalid_cid_is_refused_naming_the_field(store, bad):
    storage_checks.check_an_invalid_cid_is_refused_naming_the_field(store, bad)


def test_a_missing_cid_is_not_found(store):
    storage_checks.check_a_missing_cid_is_not_found_quickly(store)
    with pytest.raises(NotFound):
        store.pin(cid_of(b"never stored"))


def test_a_block_that_does_not_match_its_cid_is_never_served_and_is_quarantined(store):
    data = os.urandom(2 * CHUNK)
    cid = store.put(data)
    leaf = str(dag_pb_links(store.block(cid))[1])
    pack, offset, _ = store._locate(leaf)
    with open(store.root / "packs" / pack, "r+b") as f:  # one flipped bit on disk
        f.seek(offset)
        flipped = bytes([f.read(1)[0] ^ 1])
        f.seek(offset)
        f.write(flipped)
    with pytest.raises(CorruptBlock):
        store.read(cid)
    assert not store.has_block(leaf) and len(list((store.root / "quarantine").iterdir())) == 1
    assert not store.has(cid)
    assert store.put(data) == cid and store.read(cid) == data  # putting it again repairs it


def test_gc_removes_leftovers_of_crashed_writes(store):
    kept = store.put(os.urandom(CHUNK + 1))
    store.pin(kept)
    (store.root / "tmp" / "4194305.dead.pack").write_bytes(b"half")  # no pid is over 2**22
    (store.root / "packs" / "never-indexed").write_bytes(b"crashed before its index commit")
    assert store.gc()["kept_blocks"] == 3
    assert not list((store.root / "tmp").iterdir()) and store.read(kept)
    assert not (store.root / "packs" / "never-indexed").exists()


def test_gc_rewrites_a_pack_that_is_mostly_garbage(store):
    data = os.urandom(3 * CHUNK)
    leaf = str(dag_pb_links(store.block(store.put(data)))[0])
    store.pin(leaf)  # one leaf of four blocks stays
    assert store.gc()["removed_blocks"] == 3
    packs = list((store.root / "packs").iterdir())
    assert len(packs) == 1 and packs[0].stat().st_size == CHUNK
    assert store.read(leaf) == data[:CHUNK]


def test_a_store_of_one_file_a_block_is_imported_into_a_pack(tmp_path):
    data = os.urandom(CHUNK + 3)
    with LocalStore(tmp_path / "new") as source:
        cid = source.put(data)
        blocks = {name: source.block(name) for name in source._blocks_of(CID.parse(cid))}
    old = tmp_path / "old"
    for name, block in blocks.items():  # the layout PRSM wrote before packs
        (old / "blocks" / name[-2:]).mkdir(parents=True, exist_ok=True)
        (old / "blocks" / name[-2:] / name).write_bytes(block)
    (old / "pins").mkdir()
    (old / "pins" / cid).touch()
    with LocalStore(old) as store:
        assert store.read(cid) == data and store.pins() == [cid]
        assert not (old / "blocks").exists() and not (old / "pins").exists()


def test_puts_from_several_threads_share_the_index(store):
    from concurrent.futures import ThreadPoolExecutor

    datas = [os.urandom(CHUNK + 1 + i) for i in range(8)] * 2  # each twice: the same CID, stored once
    with ThreadPoolExecutor(4) as pool:
        cids = list(pool.map(store.put, datas))
    assert all(store.read(cid) == data for cid, data in zip(cids, datas, strict=True))
    assert store._db.execute("SELECT count(*) FROM blocks").fetchone()[0] == 8 * 3


def test_a_large_stream_is_never_held_whole(store):
    import tracemalloc

    def chunks(n):  # 64 MiB, generated as it is read
        for i in range(n):
            yield hashlib.sha256(str(i).encode()).digest() * 2048

    class Stream(io.RawIOBase):
        def __init__(self):
            self.it, self.buf = chunks(1024), b""

        def readable(self):
            return True

        def read(self, size=-1):
            while len(self.buf) < size:
                try:
                    self.buf += next(self.it)
                except StopIteration:
                    break
            out, self.buf = self.buf[:size], self.buf[size:]
            return out

    tracemalloc.start()
    cid = store.put(Stream())
    total = sum(len(c) for c in store.get(cid))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == 64 * 1024 * 1024 and peak < 24 * 1024 * 1024


# --- provenance --------------------------------------------------------------------------------


@pytest.fixture
def artifacts(db, store):
    from prsm.storage.artifacts import Artifacts

    return Artifacts(db, store)


def test_an_artifact_is_registered_once_with_its_parents(artifacts, store):
    data = store.put(os.urandom(CHUNK + 9))
    first = artifacts.register(data, "dataset", "alice", licence="MIT")
    assert first["size"] > CHUNK and artifacts.get(data) == first
    assert artifacts.register(data, "dataset", "alice", licence="MIT") == first  # the same bytes again
    with pytest.raises(ArtifactConflict):
        artifacts.register(data, "model", "mallory")
    model = store.put(b"student weights")
    assert artifacts.register(model, "model", "alice", parents=[data])["parents"] == [data]


def test_bad_provenance_is_refused_naming_the_field(artifacts, store):
    cid = store.put(b"bytes")
    for kwargs, field in [
        ({"kind": "movie"}, "kind"),
        ({"kind": "model", "parents": [cid_of(b"unregistered")]}, "parents"),
        ({"kind": "model", "parents": ["not-a-cid"]}, "cid"),
    ]:
        with pytest.raises(PRSMErrorBase) as info:
            artifacts.register(cid, creator="alice", **kwargs)
        assert info.value.field == field
    with pytest.raises(InvalidCID) as info:
        artifacts.get("Qm-not-v1")
    assert info.value.status_code == 400
    with pytest.raises(NotFound):
        artifacts.register(cid_of(b"not in the store"), "model", "alice")


def test_an_upload_over_the_limit_is_refused_and_registers_nothing(artifacts, store):
    import asyncio

    async def body(n):
        for _ in range(n):
            yield os.urandom(64 * 1024)

    def on_disk() -> int:
        return sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file() and f.suffix == ".pack")

    before = on_disk()
    with pytest.raises(TooLarge):
        asyncio.run(artifacts.upload(body(20), 1_000_000, kind="dataset", creator="alice"))
    assert on_disk() == before  # nothing refused stays on disk, before any gc
    assert store.pins() == [] and store.gc()["kept_blocks"] == 0
    done = asyncio.run(artifacts.upload(body(5), 1_000_000, kind="dataset", creator="alice"))
    assert store.pins() == [done["cid"]] and artifacts.get(done["cid"])["creator"] == "alice"
    assert artifacts.used_by("alice") == done["size"] >= 5 * 64 * 1024 and artifacts.used_by("bob") == 0
    with pytest.raises(TooLarge, match="quota"):
        asyncio.run(
            artifacts.upload(body(3), 100_000, "over the storage quota", kind="dataset", creator="alice")
        )
