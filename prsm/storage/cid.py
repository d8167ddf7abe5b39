"""CIDs exactly as Kubo's `ipfs add --cid-version=1` makes them, computed while streaming.

The file is cut into 256 KiB chunks; each chunk is a raw block (codec raw, 0x55). More than one
chunk: the chunks hang under a balanced tree of dag-pb nodes (codec 0x70), each with up to 174
links and a UnixFS `File` payload (total size, size of each child's data). The tree grows like
go-unixfs's balanced layout: the first leaf is the root; whenever the tree is full, a new root
takes the old one as its first child and is filled to the same depth. Hash: sha2-256. The CID
string: CIDv1 in base32 (lower case, "b" prefix). A one-chunk file's CID is its raw block's CID.

Memory: one chunk plus the links of the nodes on the current path (at most 174 per level), so a
multi-GB file is never held whole.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prsm.errors import InvalidCID

CHUNK = 256 * 1024
MAX_LINKS = 174
RAW, DAG_PB = 0x55, 0x70
SHA2_256 = 0x12


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


@dataclass(frozen=True)
class CID:
    codec: int
    digest: bytes  # sha2-256

    def __str__(self) -> str:
        raw = varint(1) + varint(self.codec) + bytes([SHA2_256, 32]) + self.digest
        return "b" + base64.b32encode(raw).decode().lower().rstrip("=")

    @classmethod
    def of(cls, codec: int, block: bytes) -> CID:
        return cls(codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> CID:
        """A CIDv1 string: base32 (what PRSM and Kubo print, "b...") or base58btc ("z...",
        what js-ipfs prints). `str()` of the result is always base32."""
        if not isinstance(text, str) or text[:1] not in ("b", "z") or len(text) > 200:
            raise InvalidCID(f"{text!r} is not a CIDv1 (base32 'b...' or base58btc 'z...')", "cid")
        try:
            if text[0] == "z":
                raw = _base58btc(text[1:])
            else:
                body = text[1:].upper()
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            version, pos = read_varint(raw, 0)
            codec, pos = read_varint(raw, pos)
            code, pos = read_varint(raw, pos)
            size, pos = read_varint(raw, pos)
        except (ValueError, base64.binascii.Error) as exc:
            raise InvalidCID(f"{text!r} is not a valid CID: {exc}", "cid") from exc
        if (
            version != 1
            or codec not in (RAW, DAG_PB)
            or code != SHA2_256
            or size != 32
            or len(raw) != pos + 32
        ):
            raise InvalidCID(f"{text!r} is not a sha2-256 raw or dag-pb CIDv1", "cid")
        return cls(codec, raw[pos:])

    def verify(self, block: bytes) -> bool:
        return hashlib.sha256(block).digest() == self.digest


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58btc(text: str) -> bytes:
    n = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58btc character")
        n = n * 58 + index
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


# --- dag-pb and UnixFS (protobuf, written by hand: four fields are all we need) --------------


def _field(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def _bytes(number: int, value: bytes) -> bytes:
    return _field(number, 2) + varint(len(value)) + value


FILE, DIRECTORY = 2, 1  # UnixFS Data.Type


def unixfs_directory() -> bytes:
    return _field(1, 0) + varint(DIRECTORY)


def unixfs_file(filesize: int, blocksizes: list[int]) -> bytes:
    data = _field(1, 0) + varint(FILE)
    data += _field(3, 0) + varint(filesize)
    for size in blocksizes:
        data += _field(4, 0) + varint(size)
    return data


def dag_pb_node(links: list[tuple], data: bytes) -> bytes:
    """PBNode: links first (field 2), then data (field 1), as the canonical encoding orders them.
    Each link is (CID, Tsize) in a file or (CID, Tsize, name) in a directory; PBLink: Hash (1),
    Name (2, empty in a file), Tsize (3)."""
    out = bytearray()
    for cid, tsize, *name in links:
        raw = varint(1) + varint(cid.codec) + bytes([SHA2_256, 32]) + cid.digest
        link = _bytes(1, raw) + _bytes(2, name[0].encode() if name else b"") + _field(3, 0) + varint(tsize)
        out += _bytes(2, link)
    out += _bytes(1, data)
    return bytes(out)


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for the rest."""
    pos = 0
    while pos < len(message):
        key, pos = read_varint(message, pos)
        if key & 7 == 2:
            length, pos = read_varint(message, pos)
            if pos + length > len(message):
                raise ValueError("truncated field")
            yield key >> 3, message[pos : pos + length]
            pos += length
        elif key & 7 == 0:
            value, pos = read_varint(message, pos)
            yield key >> 3, value
        else:
            raise ValueError(f"unexpected protobuf wire type {key & 7}")


def dag_pb_entries(block: bytes) -> list[tuple[str, CID]]:
    """The (name, CID) of each link of a dag-pb node, in order (names are empty in a file)."""
    entries = []
    for number, value in _fields(block):
        if number == 2:
            fields = dict(_fields(value))
            raw = fields.get(1, b"")
            entries.append(
                (bytes(fields.get(2, b"")).decode(), CID(read_varint(raw, 1)[0], bytes(raw[-32:])))
            )
    return entries


def dag_pb_links(block: bytes) -> list[CID]:
    """The child CIDs of a dag-pb node, in order (what `get` walks)."""
    return [cid for _, cid in dag_pb_entries(block)]


def unixfs_type(block: bytes) -> int:
    """The UnixFS type of a dag-pb node (FILE, DIRECTORY, ...)."""
    for number, value in _fields(block):
        if number == 1:
            return dict(_fields(value)).get(1, FILE)
    raise ValueError("a dag-pb node without UnixFS data")


# --- the balanced layout ---------------------------------------------------------------------


class _Node:
    __slots__ = ("links", "sizes")

    def __init__(self) -> None:
        self.links: list[tuple[CID, int]] = []  # (child CID, Tsize: bytes of the child's whole DAG)
        self.sizes: list[int] = []  # file bytes under each child


Emit = Callable[[CID, bytes], None]


def build(chunks: Iterator[bytes], emit: Emit) -> tuple[CID, int, int]:
    """Lay `chunks` out as Kubo does; `emit(cid, block)` gets every block as it is made.
    Returns the root CID, the file size and the DAG's size (every block's bytes: a link's
    Tsize)."""
    first = next(chunks, None)
    if first is None:  # the empty file: one empty raw block
        cid = CID.of(RAW, b"")
        emit(cid, b"")
        return cid, 0, 0
    root = _leaf(first, emit)  # (cid, tsize, filesize)
    pending = [next(chunks, None)]  # one chunk of look-ahead: "is the input done?"
    depth = 1
    while pending[0] is not None:
        node = _Node()
        node.links.append(root[:2])
        node.sizes.append(root[2])
        root = _fill(node, depth, chunks, pending, emit)
        depth += 1
    return root[0], root[2], root[1]


def _leaf(chunk: bytes | tuple[bytes, bytes], emit: Emit) -> tuple[CID, int, int]:
    # A chunk may come with its sha2-256 already computed (hashed in parallel: see `hashed`).
    chunk, digest = chunk if isinstance(chunk, tuple) else (chunk, None)
    cid = CID(RAW, digest) if digest is not None else CID.of(RAW, chunk)
    emit(cid, chunk)
    return cid, len(chunk), len(chunk)


def _fill(
    node: _Node, depth: int, chunks: Iterator[bytes], pending: list, emit: Emit
) -> tuple[CID, int, int]:
    while len(node.links) < MAX_LINKS and pending[0] is not None:
        if depth == 1:
            child = _leaf(pending[0], emit)
            pending[0] = next(chunks, None)
        else:
            child = _fill(_Node(), depth - 1, chunks, pending, emit)
        node.links.append(child[:2])
        node.sizes.append(child[2])
    filesize = sum(node.sizes)
    block = dag_pb_node(node.links, unixfs_file(filesize, node.sizes))
    cid = CID.of(DAG_PB, block)
    emit(cid, block)
    return cid, len(block) + sum(t for _, t in node.links), filesize


def chunked(source, size: int = CHUNK) -> Iterator[bytes]:
    """Fixed-size chunks of bytes in memory or of a binary file object (the last one shorter),
    as Kubo's default `size-262144` chunker cuts them. Bytes in memory are cut into views, not
    copied."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), size):
            yield view[start : start + size]
        return
    while True:
        chunk = _read_full(source, size)
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


def hashed(chunks: Iterator[bytes], pool, window: int = 8) -> Iterator[tuple[bytes, bytes]]:
    """(chunk, sha2-256) pairs in order, hashed `window` chunks ahead on `pool`'s threads
    (hashlib releases the GIL on large buffers, so chunks hash on several cores)."""
    from collections import deque

    ahead: deque = deque()
    try:
        for chunk in chunks:
            ahead.append((chunk, pool.submit(_sha256, chunk)))
            if len(ahead) >= window:
                chunk, digest = ahead.popleft()
                yield chunk, digest.result()
        while ahead:
            chunk, digest = ahead.popleft()
            yield chunk, digest.result()
    finally:  # abandoned (an error upstream or downstream): no work left running behind us
        for _, digest in ahead:
            digest.cancel()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _read_full(stream, size: int) -> bytes:
    first = stream.read(size)
    if not first or len(first) == size:
        return first or b""
    parts, missing = [first], size - len(first)
    while missing:
        part = stream.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def cid_of(data: bytes | Iterable[bytes]) -> str:
    """The CID of some bytes (or of a file's chunks), without storing anything."""
    chunks = chunked(data) if isinstance(data, bytes | bytearray | memoryview) else iter(data)
    return str(build(chunks, lambda cid, block: None)[0])
