"""Ray job: settle the FTNS ledger on chain (credit confirmed deposits, then pay every linked
payee's earnings since the last epoch in one transaction). Safe to run again after any crash.

    ray job submit --working-dir . -- python jobs/settle.py
    python jobs/settle.py [--no-deposits]        # the same as `prsm ftns settle`

Configuration comes from PRSM_* variables on the node that runs it: PRSM_DATABASE_URL, and for a
chain node PRSM_CHAIN_URL plus PRSM_CHAIN_KEYSTORE (+ _PASSWORD) or PRSM_CHAIN_KEY. Prefer a
keystore file on the head node to a key in --runtime-env-json: runtime environments are shown in
the Ray dashboard.
"""

from __future__ import annotations

import sys

from prsm.cli import main

if __name__ == "__main__":
    sys.exit(main(["ftns", "settle", *sys.argv[1:]]))
