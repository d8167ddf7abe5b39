"""Autoscaling under a ramp (issue 16 §3): load up and down, replicas added and removed, no
failed request.

The app runs on one local Ray with the autoscaling settings deployments/prsm.yaml carries
(`lm_autoscaling`, `nwtn_autoscaling` in its `args`: read from the file, so this measures what
ships). Connections send one-sentence explanation queries (each a language-model sub-task,
worded so that none is answered from the sub-task cache) in a closed loop; their number ramps
through the phases below. Every second the replicas of LMReplica and NWTN that are RUNNING are
read from `serve.status()`. Reported: the timeline (connections, replicas, answers and failures
per second), the most and the fewest replicas of each, when they were added and removed, every
request that was not a 200 (the target: none), and per phase the queries answered per second
and their p50 latency; the ratio of the peak phase's throughput to the first one's.

    python benchmarks/autoscale.py [--quick]
Writes benchmarks/results/autoscale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from machine import machine, report  # noqa: E402  (benchmarks/machine.py)

from prsm.settings import apply_ray_env  # noqa: E402
from tests.services import free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "autoscale.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
# (connections, seconds): up, a plateau, down, idle (for the downscale delay to pass)
PHASES = [(2, 30), (12, 60), (24, 90), (4, 45), (0, 75)]
QUICK = [(2, 15), (24, 60), (0, 60)]
TOPICS = ["entropy", "a photon", "an enzyme", "a catalyst", "inertia", "a gene", "osmosis", "a black hole",
          "momentum", "an isotope", "diffusion", "a vaccine", "torque", "a neutron", "pH", "a prime number"]  # fmt: skip

apply_ray_env()


def shipped_args() -> dict:
    config = yaml.safe_load((REPO / "deployments" / "prsm.yaml").read_text())
    return dict(config["applications"][0].get("args") or {})


class Replicas(threading.Thread):
    """Samples the RUNNING replicas of each deployment every second."""

    def __init__(self, names: tuple[str, ...]):
        super().__init__(daemon=True)
        self.names, self.samples, self._halt = names, [], threading.Event()
        self.started = time.perf_counter()

    def run(self) -> None:
        from ray import serve

        while not self._halt.is_set():
            try:
                deployments = serve.status().applications["prsm"].deployments
                counts = {n: deployments[n].replica_states.get("RUNNING", 0) for n in self.names}
                self.samples.append((round(time.perf_counter() - self.started, 1), counts))
            except Exception:  # noqa: BLE001 (a sample missed while Serve changes its state)
                pass
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join()


async def ramp(base: str, key: str, phases: list[tuple[int, int]], t0: float) -> list[dict]:
    """Each phase: that many connections in a closed loop for its seconds. Every request's
    (time, phase, status, seconds)."""
    results: list[dict] = []
    counter = iter(range(10**9))
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=300, headers=headers,
                                 limits=httpx.Limits(max_connections=64)) as client:  # fmt: skip

        async def connection(phase: int, until: float) -> None:
            while time.perf_counter() < until:
                i = next(counter)
                prompt = f"In one sentence, what is {TOPICS[i % len(TOPICS)]}? (question {i})"
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/query", json={"prompt": prompt})
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                results.append({"t": round(started - t0, 2), "phase": phase, "status": status,
                                "s": round(time.perf_counter() - started, 3)})  # fmt: skip

        for phase, (connections, seconds) in enumerate(phases):
            until = time.perf_counter() + seconds
            print(f"phase {phase}: {connections} connections for {seconds} s", flush=True)
            if connections:
                await asyncio.gather(*(connection(phase, until) for _ in range(connections)))
            await asyncio.sleep(max(until - time.perf_counter(), 0))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three short phases")
    args = parser.parse_args()
    phases = QUICK if args.quick else PHASES

    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings

    shipped = shipped_args()
    scaling = {k: shipped[k] for k in ("lm_autoscaling", "nwtn_autoscaling") if k in shipped}
    if not scaling:
        raise SystemExit(
            "deployments/prsm.yaml sets no autoscaling (args.lm_autoscaling, args.nwtn_autoscaling)"
        )
    port = free_port()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="prsm-autoscale-")), model_dir=MODEL_DIR,
                        port=port, _env_file=None, **scaling)  # fmt: skip
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    watch = Replicas(("LMReplica", "NWTN"))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        with Services(settings) as services:
            key, _ = services.keys.create("ramp")
            services.ledger.mint("ramp", 10**21, "ramp-faucet")
        httpx.post(f"{base}/v1/query", json={"prompt": "In one sentence, what is heat?"},
                   headers={"authorization": f"Bearer {key}"}, timeout=300).raise_for_status()  # fmt: skip
        watch.start()
        results = asyncio.run(ramp(base, key, phases, watch.started))
        time.sleep(1)
    finally:
        watch.stop()
        serve.shutdown()
        ray.shutdown()

    failed = [r for r in results if r["status"] != 200]
    per_phase = []
    for phase, (connections, seconds) in enumerate(phases):
        ok = [r["s"] for r in results if r["phase"] == phase and r["status"] == 200]
        per_phase.append({"connections": connections, "seconds": seconds, "answered": len(ok),
                          "per_s": round(len(ok) / seconds, 3),
                          "p50_s": round(statistics.median(ok), 2) if ok else None})  # fmt: skip
    timeline, changes = [], []
    last: dict = {}
    for t, counts in watch.samples:
        answered = sum(1 for r in results if t - 1 < r["t"] + r["s"] <= t and r["status"] == 200)
        timeline.append({"t": t, **counts, "answered": answered})
        if counts != last:
            changes.append({"t": t, **counts})
            last = counts
    lm = [c["LMReplica"] for _, c in watch.samples]
    nwtn = [c["NWTN"] for _, c in watch.samples]
    loaded = [p["per_s"] for p in per_phase if p["connections"]]
    result = {
        "machine": machine(),
        "quick": args.quick,
        "autoscaling": scaling,
        "phases": per_phase,
        "requests": len(results),
        "failed_requests": len(failed),
        "failed_ratio": round(len(failed) / max(len(results), 1), 4),
        "failed_examples": failed[:10],
        "lm_replicas_max": max(lm, default=0),
        "lm_replicas_min": min(lm, default=0),
        "lm_replicas_at_end": lm[-1] if lm else 0,
        "nwtn_replicas_max": max(nwtn, default=0),
        "nwtn_replicas_at_end": nwtn[-1] if nwtn else 0,
        "replica_changes": changes,
        "throughput_ratio_peak_vs_first_phase": round(max(loaded) / max(loaded[0], 1e-9), 3),
        "targets_met": {
            "replicas_added": max(lm, default=0) > (lm[0] if lm else 0),
            "replicas_removed": bool(lm) and lm[-1] < max(lm),
            "no_failed_request": not failed,
        },
        "timeline": timeline,
    }
    report(result, RESULTS, leave_out=("timeline",))


if __name__ == "__main__":
    main()
