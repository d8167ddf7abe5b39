"""Content-addressed storage: Kubo-compatible CIDs (cid.py), the local block store (local.py,
the embedded default) and any IPFS node over the Kubo RPC API (ipfs.py, `PRSM_IPFS_URL`)."""

from __future__ import annotations

from prsm.settings import Settings
from prsm.storage.base import BlockStore
from prsm.storage.ipfs import IpfsStore
from prsm.storage.local import LocalStore


def open_store(settings: Settings) -> BlockStore:
    """The store the settings name: an IPFS node if PRSM_IPFS_URL is set, else the local one."""
    if settings.ipfs_url:
        return IpfsStore(settings.ipfs_url, settings.ipfs_timeout_s)
    return LocalStore(settings.resolved_store_dir)
