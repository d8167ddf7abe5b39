"""How long each step of a real two-host cluster takes: `ray up` to `ray down`.

Two hosts on this machine (Linux network, PID and mount namespaces on a bridge, each with its
own sshd and /tmp: tests/cluster.py), PostgreSQL and an IPFS node on the bridge as the cluster's
shared state. The steps, each timed: `prsm cluster config` + `ray up` of the repository's
ray_cluster.yaml, the worker joining (the autoscaler starts it over SSH), `serve deploy` of
deployments/prsm.yaml until the app is RUNNING, two paid queries through the head's proxy (a
unit conversion and a language-model question; every replica is on the worker), a distillation
job through `ray job submit` (teacher data, Ray Train on the worker, evaluation, the student
stored in IPFS and registered), a chat completion answered by that student, `ray down`.
tests/integration/test_cluster.py asserts the same run's outcomes; this script reports times.
There is no baseline to divide by: the figures are the cluster's launch time and its parts.

    python benchmarks/cluster.py [--quick]       (--quick: 2 training steps instead of 8)
Writes benchmarks/results/cluster.json. Needs root, sshd and rsync (.ci/run installs them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.cluster, tests.services
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from tests.cluster import BIN, SUBNET, launch, missing, two_hosts  # noqa: E402
from tests.conftest import MODEL_DIR  # noqa: E402
from tests.services import fresh_database, ipfs_node, private_postgres  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "cluster.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 training steps instead of 8")
    args = p.parse_args()
    why = missing()
    if why:
        raise SystemExit(f"the two-host cluster cannot run here: {why}")
    folder = Path(tempfile.mkdtemp(prefix="prsm-cluster-bench-", dir="/var/tmp"))
    started = time.perf_counter()
    try:
        with (
            two_hosts(folder, BIN) as hosts,
            private_postgres(hosts.bridge, f"{SUBNET}.0/24") as pg,
            ipfs_node(host=hosts.bridge) as ipfs,
        ):
            hosts_s = time.perf_counter() - started
            done = launch(hosts, folder, fresh_database(pg), ipfs, MODEL_DIR, steps=2 if args.quick else 8)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    steps = done.steps
    launch_s = steps["ray up"] + steps["worker joined"] + steps["serve deploy"]
    results = {
        "machine": machine(hosts="2 network+PID+mount namespaces on one machine, bridged"),
        "quick": args.quick,
        "hosts_and_services_seconds": round(hosts_s, 1),
        "steps_seconds": steps,
        "cluster_launch_seconds": round(launch_s, 1),  # ray up -> both nodes -> the app RUNNING
        "facts": {k: v for k, v in done.facts.items() if k != "job_tail"},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, seconds in steps.items():
        print(f"{name:40} {seconds:7.1f} s")
    print(f"cluster launch (ray up, worker joined, app RUNNING): {launch_s:.1f} s")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
