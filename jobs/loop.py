"""Ray job: one turn of the learning loop (prsm/loop.py): cluster recent traffic, distil the
costliest cluster's sub-tasks into a student from the serving model's own answers, evaluate it
on held-out traffic of that cluster, register it and start it as a canary on the cluster.

    ray job submit --working-dir . -- python jobs/loop.py --steps 300
    prsm loop run ...           # the same, on the local Ray

`--help` lists the arguments (those of `prsm loop run`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir of `ray job submit`

from prsm.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["loop", "run", *sys.argv[1:]]))
