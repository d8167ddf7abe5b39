"""Secrets PRSM keeps for others, sealed: a remote card's credential (its owner's API key for the
endpoint) is stored in the database only as AES-256-GCM ciphertext under the node's secret key,
bound to the card's id and endpoint (associated data). So the database alone reveals nothing, a
sealed credential moved to another card or endpoint does not open, and an owner who changes the
endpoint gives the credential again.

The node's secret key comes from `PRSM_SECRET_KEY` (64 hex digits), or from the file
`data_dir/secret.key` (made with mode 0600 on first use). Every process that calls remote
endpoints needs the same key: on a cluster, set `PRSM_SECRET_KEY` in the Serve app's environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from prsm.errors import ModelCallFailed

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"


def context_of(model_id: str, endpoint: str) -> bytes:
    return f"prsm-credential\n{model_id}\n{endpoint}".encode()


class Sealer:
    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"the node's secret key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_hex(cls, text: str) -> Sealer:
        try:
            return cls(bytes.fromhex(text.strip()))
        except ValueError:
            raise ValueError(f"PRSM_SECRET_KEY must be {2 * KEY_BYTES} hex digits") from None

    @classmethod
    def from_file(cls, path: Path) -> Sealer:
        """The key in `path`, made (0600, never overwritten) when there is none yet."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(KEY_BYTES) + "\n")
        return cls.from_hex(path.read_text())

    def seal(self, secret: str, context: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, secret.encode(), context)

    def open(self, sealed: bytes, context: bytes) -> str:
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise ModelCallFailed("the card's credential is not in a form this node reads", "model")
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, context).decode()
        except InvalidTag:
            raise ModelCallFailed(
                "the card's credential does not open with this node's secret key (PRSM_SECRET_KEY "
                "differs between processes, or the card was changed): its owner gives it again",
                "model",
            ) from None
