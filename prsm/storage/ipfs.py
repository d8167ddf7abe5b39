"""The IPFS backend: any node with the Kubo RPC API (Kubo, js-ipfs), e.g. http://127.0.0.1:5001/api/v0.

Files are added with the parameters that fix the CID (CIDv1, raw leaves, 256 KiB chunks,
sha2-256: the same CID as the local store computes, tests/integration/test_ipfs.py). Reads do
not trust the node: `get` fetches block by block (`block/get`), verifies each against its CID
and walks the DAG itself, like the local store. A block that fails verification is removed from
the node (`block/rm`) and the read fails. Every call carries a timeout (`timeout_s`, default 5 s)
so a CID no peer has fails with NotFound instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import io
import json

import httpx

from prsm import metrics
from prsm.errors import CorruptBlock, IpfsError, NotFound, PRSMError
from prsm.storage.base import BlockStore
from prsm.storage.cid import CHUNK, CID, DAG_PB, _base58btc

FETCHES = {"block/get", "block/stat", "pin/add"}


class IpfsStore(BlockStore):
    backend = "ipfs"

    def __init__(self, url: str, timeout_s: float = 5.0, threads: int | None = None):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s + 5, connect=5), limits=httpx.Limits(max_connections=16)
        )
        super().__init__(threads)

    @property
    def location(self) -> str:
        return self.url

    def _call(self, command: str, cid: str | None = None, files=None, **params) -> httpx.Response:
        # Fetches (a block, a pin of content the node may lack) are bounded by `timeout_s`, on
        # the node (its `timeout` option) and here; local work (add, gc, listing) is not.
        fetch = command in FETCHES
        if fetch:
            params["timeout"] = f"{int(self.timeout_s * 1000)}ms"
        if cid is not None:
            params["arg"] = cid
        timeout = httpx.Timeout(self.timeout_s + 5 if fetch else None, connect=5)
        try:
            response = self._http.post(f"{self.url}/{command}", params=params, files=files, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise NotFound(
                f"{cid or command}: the IPFS node did not answer in {self.timeout_s:.0f} s", "cid"
            ) from exc
        except httpx.HTTPError as exc:
            raise IpfsError(f"the IPFS node at {self.url} is unreachable: {exc}") from exc
        if response.status_code != 200:
            message = _message(response)
            if cid is not None and any(
                k in message.lower() for k in ("not found", "timeout", "timed out", "aborted", "not pinned")
            ):
                raise NotFound(f"{cid}: {message}", "cid")
            raise IpfsError(f"IPFS {command}: {message}")
        return response

    def close(self) -> None:
        self._http.close()
        super().close()

    # --- blocks -----------------------------------------------------------------------------

    def block(self, cid: str | CID) -> bytes:
        parsed = cid if isinstance(cid, CID) else CID.parse(cid)
        name = str(parsed)
        data = self._call("block/get", name).content
        if not parsed.verify(data):
            with contextlib.suppress(PRSMError):  # the refusal stands even if the node keeps it
                self._call("block/rm", name, force="true")
            metrics.STORE_QUARANTINED.inc(backend=self.backend)
            raise CorruptBlock(f"block {name} from the IPFS node does not match its CID: removed", "cid")
        metrics.STORE_BYTES_OUT.inc(len(data), backend=self.backend)
        return data

    def has_block(self, cid: str) -> bool:
        try:
            self._call("block/stat", cid)
        except NotFound:
            return False
        return True

    def block_size(self, cid: str) -> int:
        return int(self._call("block/stat", cid).json()["Size"])

    # --- files ------------------------------------------------------------------------------

    def _put_stream(self, source) -> str:
        stream = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
        params = {
            "cid-version": 1,
            "raw-leaves": "true",
            "chunker": f"size-{CHUNK}",
            "hash": "sha2-256",
            "pin": "false",
        }
        files = {"file": ("data", stream, "application/octet-stream")}  # streamed by httpx
        lines = self._call("add", files=files, **params).text.strip().splitlines()
        return str(CID.parse(json.loads(lines[-1])["Hash"]))

    def put_node(self, block: bytes) -> str:
        ours = CID.of(DAG_PB, block)
        files = {"file": ("block", block, "application/octet-stream")}
        params = {"cid-codec": "dag-pb", "format": "dag-pb", "mhtype": "sha2-256", "pin": "false"}
        key = self._call("block/put", files=files, **params).json()["Key"]
        # js-ipfs answers a sha2-256 dag-pb block with its CIDv0 ("Qm...", the same multihash)
        theirs = CID(DAG_PB, _base58btc(key)[2:]) if key.startswith("Qm") else CID.parse(key)
        if theirs != ours:
            raise IpfsError(f"the IPFS node stored a dag-pb block as {theirs}, not {ours}")
        return str(ours)

    def pin(self, cid: str) -> None:
        self._call("pin/add", str(CID.parse(cid)), recursive="true")

    def unpin(self, cid: str) -> None:
        self._call("pin/rm", str(CID.parse(cid)), recursive="true")

    def pins(self) -> list[str]:
        text = self._call("pin/ls", type="recursive").text
        keys: list[str] = []
        for line in text.strip().splitlines():  # Kubo: one object; js-ipfs: one line a pin
            data = json.loads(line)
            keys += list(data["Keys"]) if "Keys" in data else [data["Cid"]]
        return sorted(str(CID.parse(k)) for k in keys if k[:1] in ("b", "z"))  # CIDv0 pins are not PRSM's

    def gc(self) -> dict:
        text = self._call("repo/gc").text
        removed = sum(
            1 for line in text.strip().splitlines() if line.strip() and "Error" not in json.loads(line)
        )
        return {"removed_blocks": removed}


def _message(response: httpx.Response) -> str:
    try:
        return json.loads(response.text).get("Message") or response.text[:300]
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
