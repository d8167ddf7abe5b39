"""How fast the content-addressed store puts and gets, against plain SHA-256 of the same bytes.

In one run, on 100 MB of random bytes (the median of several rounds, each on a fresh store):
  - baseline: hashlib.sha256 over the bytes, one call (the floor of content addressing: every
    byte must be hashed once to name it, once more to verify it when read);
  - put: chunk, hash, lay out the DAG, append every block to the put's pack file and index it
    (durable, the default: the pack is fsynced and the index committed before put returns), and
    the same without the syncs (`sync=False`);
  - get: walk the DAG, read and verify every block, stream the bytes out.
Target (issue 4): put and get each at least 50 % of the hashing throughput.

    python benchmarks/storage.py [--quick]
Writes benchmarks/results/storage.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.settings import Settings  # noqa: E402
from prsm.storage.local import LocalStore  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "storage.json"
MB = 10**6
SIZE = 100 * MB


def rate(seconds: float) -> float:
    return SIZE / MB / seconds


def one_round(data: bytes, sync: bool, where: Path) -> dict:
    root = Path(tempfile.mkdtemp(prefix="store-bench-", dir=where))
    try:
        store = LocalStore(root, sync=sync)
        os.sync()  # start from a quiet disk: the previous round's writeback is not this one's cost
        started = time.perf_counter()
        cid = store.put(data)
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        got = sum(len(chunk) for chunk in store.get(cid))
        get_s = time.perf_counter() - started
        assert got == len(data)
        return {"put_s": put_s, "get_s": get_s, "cid": cid}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        os.sync()


def ipfs_backend(data: bytes, rounds: int, sha: float) -> dict:
    """The same put and get through the IPFS backend, against a real node on loopback."""
    from prsm.storage.ipfs import IpfsStore
    from tests.services import ipfs_node

    puts, gets = [], []
    with ipfs_node() as url:
        store = IpfsStore(url, timeout_s=30)
        for i in range(rounds):
            # New bytes each round: the node keeps what it was given, and would not store
            # the same blocks twice.
            fresh = data if i == 0 else os.urandom(len(data))
            started = time.perf_counter()
            cid = store.put(fresh)
            puts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert sum(len(chunk) for chunk in store.get(cid)) == len(fresh)
            gets.append(time.perf_counter() - started)
    put, get = rate(statistics.median(puts)), rate(statistics.median(gets))
    return {"node": "0.66.1", "rounds": rounds, "put_mb_per_s": put, "get_mb_per_s": get,
            "put_vs_sha256_ratio": put / sha, "get_vs_sha256_ratio": get / sha}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    data = os.urandom(SIZE)
    # Where the store lives by default (PRSM_DATA_DIR): file systems differ.
    where = Settings().data_dir
    where.mkdir(parents=True, exist_ok=True)

    hashing, durable, cached = [], [], []
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits all three alike
        started = time.perf_counter()
        hashlib.sha256(data).digest()
        hashing.append(time.perf_counter() - started)
        durable.append(one_round(data, sync=True, where=where))
        cached.append(one_round(data, sync=False, where=where))
    sha = rate(statistics.median(hashing))
    put = rate(statistics.median(r["put_s"] for r in durable))
    put_nosync = rate(statistics.median(r["put_s"] for r in cached))
    get = rate(statistics.median(r["get_s"] for r in durable + cached))
    result = {
        "benchmark": "storage",
        "quick": args.quick,
        "bytes": SIZE,
        "rounds": rounds,
        "backend": "local block store",
        "store_folder": str(where),
        "machine": machine(),
        "sha256_mb_per_s": sha,
        "put_mb_per_s": put,
        "put_without_sync_mb_per_s": put_nosync,
        "get_mb_per_s": get,
        "put_vs_sha256_ratio": put / sha,
        "put_without_sync_vs_sha256_ratio": put_nosync / sha,
        "get_vs_sha256_ratio": get / sha,
        "target_ratio": 0.5,
    }
    result["ipfs"] = ipfs_backend(data, 1 if args.quick else 3, sha)
    print(f"\n100 MB, median of {rounds} rounds, local block store ({os.cpu_count()} cores)")
    print(f"  sha256            {sha:8.0f} MB/s")
    print(f"  put (synced)      {put:8.0f} MB/s   ratio {put / sha:.2f}")
    print(f"  put (no sync)     {put_nosync:8.0f} MB/s   ratio {put_nosync / sha:.2f}")
    print(f"  get (verified)    {get:8.0f} MB/s   ratio {get / sha:.2f}   (target >= 0.5 each)")
    i = result["ipfs"]
    print(f"IPFS backend (js-ipfs {i['node']}, loopback), median of {i['rounds']} rounds:")
    print(f"  put               {i['put_mb_per_s']:8.0f} MB/s   ratio {i['put_vs_sha256_ratio']:.2f}")
    print(f"  get (verified)    {i['get_mb_per_s']:8.0f} MB/s   ratio {i['get_vs_sha256_ratio']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
