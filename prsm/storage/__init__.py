"""Content-addressed storage: Kubo-compatible CIDs (cid.py) and the local block store (local.py)."""
