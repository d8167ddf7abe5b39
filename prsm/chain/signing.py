"""Signed node-to-node calls: a node calls a peer with a signature by its chain key over the
request, and the peer checks it against the node registry as it follows it. No secret is ever
exchanged between nodes: the chain says which key is which node.

What is signed is this text, as an EIP-191 personal message (what `eth_sign`/`personal_sign`
sign, so any Ethereum library can produce or check it):

    PRSM federation call v1
    POST /v1/federation/call
    to 0x<the called node's operator, lower case> on chain <chain id>
    at <unix seconds> nonce <32 hex digits>
    body sha256 <hex digest of the request body>

sent in the headers `x-prsm-node` (the caller's operator address), `x-prsm-timestamp`,
`x-prsm-nonce` and `x-prsm-signature` (65 bytes, 0x hex). Binding the audience and the chain
means a request signed for one node cannot be replayed to another, nor on another network; the
timestamp bounds how long a captured request stays usable (PRSM_FEDERATION_MAX_SKEW_S), and the
called node answers each nonce once (it is the idempotency key of what it charges).

eth_account is imported on first use (no web3 here): the app's ingress loads it only when a peer
calls, a tool replica only when it calls a peer. The operator's key is read here too.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from prsm.errors import BadSignature, ChainError

SCHEME = "PRSM federation call v1"
CALL_PATH = "/v1/federation/call"  # the route a peer node's call is sent to (and signed for)
NODE, TIMESTAMP, NONCE, SIGNATURE = "x-prsm-node", "x-prsm-timestamp", "x-prsm-nonce", "x-prsm-signature"
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
HEX_NONCE = re.compile(r"^[0-9a-f]{32}$")
HEX_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")


def message(
    method: str, path: str, audience: str, chain_id: int, timestamp: int, nonce: str, body: bytes
) -> str:
    return "\n".join((
        SCHEME,
        f"{method.upper()} {path}",
        f"to {audience.lower()} on chain {chain_id}",
        f"at {timestamp} nonce {nonce}",
        f"body sha256 {hashlib.sha256(body).hexdigest()}",
    ))  # fmt: skip


def sign(
    account, method: str, path: str, audience: str, chain_id: int, body: bytes,
    now: float | None = None, nonce: str | None = None,
) -> dict[str, str]:  # fmt: skip
    """The headers that sign this request with `account` (an eth_account LocalAccount)."""
    from eth_account.messages import encode_defunct

    timestamp = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    text = message(method, path, audience, chain_id, timestamp, nonce, body)
    signed = account.sign_message(encode_defunct(text=text))
    return {NODE: account.address, TIMESTAMP: str(timestamp), NONCE: nonce,
            SIGNATURE: "0x" + bytes(signed.signature).hex()}  # fmt: skip


def signer(
    headers: Mapping[str, str], method: str, path: str, audience: str, chain_id: int, body: bytes,
    max_skew_s: float, now: float | None = None,
) -> tuple[str, str]:  # fmt: skip
    """(the caller's operator address as it signed, the nonce) of a signed request, or
    BadSignature naming what is wrong. Membership is the caller's to check (prsm/federation/serve.py)."""
    node, stamp = headers.get(NODE, ""), headers.get(TIMESTAMP, "")
    nonce, signature = headers.get(NONCE, ""), headers.get(SIGNATURE, "")
    if not (node or stamp or nonce or signature):
        raise BadSignature(
            "a peer's call is signed by its chain key (x-prsm-node, x-prsm-signature)", SIGNATURE
        )
    if not ADDRESS.match(node):
        raise BadSignature(f"{NODE} is not an address", NODE)
    if not stamp.isdigit() or len(stamp) > 12:
        raise BadSignature(f"{TIMESTAMP} is not a time in unix seconds", TIMESTAMP)
    if not HEX_NONCE.match(nonce):
        raise BadSignature(f"{NONCE} is not 32 lower-case hex digits", NONCE)
    if not HEX_SIGNATURE.match(signature):
        raise BadSignature(f"{SIGNATURE} is not a 65-byte signature in 0x hex", SIGNATURE)
    age = (time.time() if now is None else now) - int(stamp)
    if abs(age) > max_skew_s:
        raise BadSignature(
            f"the request was signed {age:.0f} s from now; at most {max_skew_s:g} s are accepted (clocks in sync?)",
            TIMESTAMP,
        )
    from eth_account import Account
    from eth_account.messages import encode_defunct

    text = message(method, path, audience, chain_id, int(stamp), nonce, body)
    try:
        recovered = Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(signature[2:]))
    except Exception:  # noqa: BLE001 (a malformed signature is the caller's: 401, whatever eth_keys raises)
        raise BadSignature("the signature does not verify", SIGNATURE) from None
    if recovered.lower() != node.lower():
        raise BadSignature(
            f"the signature is not by {node} (forged, or signed for another node, chain or body)", SIGNATURE
        )
    return recovered, nonce


def operator_key(settings):
    """The operator's chain key (an eth_account LocalAccount): PRSM_CHAIN_KEY or the keystore.
    Never logged or stored."""
    from eth_account import Account

    if settings.chain_key is not None:
        return Account.from_key(settings.chain_key.get_secret_value())
    if settings.chain_keystore is not None:
        password = settings.chain_keystore_password
        if password is None:
            raise ChainError("PRSM_CHAIN_KEYSTORE needs PRSM_CHAIN_KEYSTORE_PASSWORD", "chain_keystore")
        keystore = json.loads(Path(settings.chain_keystore).read_text())
        return Account.from_key(Account.decrypt(keystore, password.get_secret_value()))
    raise ChainError(
        "a chain node is configured (PRSM_CHAIN_URL) but no operator key: set PRSM_CHAIN_KEY or "
        "PRSM_CHAIN_KEYSTORE",
        "chain_key",
    )
