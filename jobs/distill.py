"""Ray job: distil a registered teacher into a small student, evaluate it, store it by CID and
register it in the marketplace.

    ray job submit --working-dir . -- python jobs/distill.py --teacher smollm2-135m-instruct \\
        --student smollm2-15m --data builtin:science --steps 300
    prsm distill ...            # the same, on the local Ray, with a progress bar

Every argument is checked before a worker starts; submitting the same job again after it was
killed resumes it from its last checkpoint (the run is named after the spec). `--help` lists
the arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir of `ray job submit`

from prsm.cli.distill import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
