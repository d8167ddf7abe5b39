"""What the NWTN path costs over bare Ray Serve, how much memory the embedded app takes, and how
long `prsm demo` takes to its first answer.

In one run, on one local Ray, at 1, 8 and 32 concurrent clients:
  (a) POST /v1/query, with an API key that has limits (so every request also passes the
      cluster's limiter and is written to the audit trail), whose plan is one unit conversion (the constant-time
      `pint-units` specialist): NWTN (key, safety, plan, hold, persist) -> Router (embedding,
      ranking) -> ToolReplica -> back
  (b) the baseline: a bare Ray Serve echo deployment, same HTTP proxy, same client.
The two take turns at each level (4 rounds each), so a shared machine's drift falls on both.
Prints p50/p99 latency and throughput of both, their throughput ratio (target at 32 clients:
NWTN >= 0.6x the echo's) and where the CPU of a request goes, per Serve process. Then the peak memory of all Ray processes with the default model
loaded (target < 6 GiB), then the time from `prsm demo` to its first answer with the
environment (venv, converted model) present.

    python benchmarks/serve_overhead.py [--quick]
Writes benchmarks/results/serve_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.services
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.settings import apply_ray_env  # noqa: E402
from prsm.types import KeyLimits  # noqa: E402
from tests.services import free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serve_overhead.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
CONCURRENCY = (1, 8, 32)
ROUNDS = 4  # echo and NWTN take turns this many times per load level
TARGET = 0.6  # NWTN's throughput over the echo's at 32 clients
GiB = 1024**3

apply_ray_env()  # the same Ray environment as `prsm up`, for both the app and the baseline


def ray_processes() -> list[psutil.Process]:
    me = os.getpid()
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.info["pid"] == me:
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        name = p.info["name"] or ""
        if name.startswith("ray::") or name in ("raylet", "gcs_server") or "/ray/" in cmd:
            found.append(p)
    return found


def memory_now() -> tuple[int, int]:
    """(sum of RSS, sum of PSS) over all Ray processes; PSS counts shared pages once."""
    rss = pss = 0
    for p in ray_processes():
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


SERVE_PROCESSES = ("ProxyActor", "NWTN", "Router", "ToolReplica", "LMReplica", "Echo")


def serve_cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of each Serve process of the benchmark, by deployment."""
    found: dict[str, float] = {}
    for p in ray_processes():
        try:
            title = " ".join(p.cmdline())
            times = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for name in SERVE_PROCESSES:
            if (
                f"ray::ServeReplica:prsm:{name}" in title
                or f"ray::ServeReplica:echo:{name}" in title
                or (name == "ProxyActor" and "ray::ProxyActor" in title)
            ):
                found[name] = found.get(name, 0.0) + times.user + times.system
    return found


def cpu_per(cpu_seconds: dict, requests: int, names: tuple[str, ...]) -> dict[str, float]:
    """ms of CPU per answered request, per Serve process, from summed `serve_cpu_seconds` deltas."""
    return {
        name: round(1000 * cpu_seconds[name] / max(requests, 1), 2) for name in names if name in cpu_seconds
    }


class PeakMemory(threading.Thread):
    def __init__(self, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.every_s, self.peak_rss, self.peak_pss, self._halt = every_s, 0, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss, pss = memory_now()
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


async def load(url: str, body_for, clients: int, seconds: float, headers: dict | None = None) -> dict:
    """`clients` closed-loop clients for `seconds`; every request must answer 200."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:

        async def worker(w: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                t0 = time.perf_counter()
                response = await client.post(url, json=body_for(w * 1_000_000 + i))
                if response.status_code != 200:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - started
    return {"clients": clients, "latencies": latencies, "errors": errors, "elapsed": elapsed}


def summary(runs: list[dict]) -> dict:
    """One figure from several `load` runs of the same level: requests over their summed time."""
    latencies = sorted(x for run in runs for x in run["latencies"])
    elapsed = sum(run["elapsed"] for run in runs)
    return {
        "clients": runs[0]["clients"],
        "requests": len(latencies),
        "errors": sum(run["errors"] for run in runs),
        "seconds": round(elapsed, 2),
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if latencies
        else None,
    }


def measure_serve(seconds: float, limits: bool = True) -> dict:
    import ray
    from ray import serve
    from starlette.requests import Request

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings

    @serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.1})
    class Echo:
        async def __call__(self, request: Request) -> dict:
            return await request.json()

    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="prsm-bench-"))
    settings = Settings(data_dir=data_dir, model_dir=MODEL_DIR, port=port, _env_file=None)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    peak = PeakMemory()
    peak.start()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
        serve.run(Echo.bind(), name="echo", route_prefix="/echo")
        base = f"http://127.0.0.1:{port}"

        # Queries are paid and every request carries an API key (the echo's too: the same bytes
        # on the wire); the benchmark's account gets FTNS from the dev faucet first.
        with Services(settings) as services:
            # Limits far above what the run needs: none refuses a request, all are checked.
            generous = KeyLimits(rpm=5_000_000, tpm=10**11, concurrent=10_000, budget=10**24)
            token, _ = services.keys.create("bench", limits=generous if limits else KeyLimits())
            services.ledger.mint("bench", 10**24, "bench-faucet")
        key = {"authorization": f"Bearer {token}"}

        # Load the default model, so the memory figure is of the app as it answers everything.
        demo = httpx.post(
            f"{base}/v1/query", json={"prompt": "In one sentence, what is entropy?"}, headers=key, timeout=300
        )
        demo.raise_for_status()

        def nwtn_body(i: int) -> dict:
            return {"prompt": f"Convert {i % 997 + 1} km to miles", "user": "bench"}

        def echo_body(i: int) -> dict:
            return {"prompt": f"Convert {i % 997 + 1} km to miles", "user": "bench"}

        check = httpx.post(f"{base}/v1/query", json=nwtn_body(1), headers=key, timeout=60).json()
        assert [t["model"] for t in check["tasks"]] == ["pint-units"], check
        rows = []
        for clients in CONCURRENCY:
            asyncio.run(load(f"{base}/echo", echo_body, clients, 2, key))  # warm connections, replicas
            asyncio.run(load(f"{base}/v1/query", nwtn_body, clients, 2, key))
            # The two take turns, ROUNDS times each, so that the machine's drift (a shared VM's
            # speed moves by tens of percent over minutes) falls on both alike.
            echo_runs, nwtn_runs = [], []
            echo_cpu = dict.fromkeys(SERVE_PROCESSES, 0.0)
            nwtn_cpu = dict.fromkeys(SERVE_PROCESSES, 0.0)
            for _ in range(ROUNDS):
                for url, body, runs, cpu in (
                    (f"{base}/echo", echo_body, echo_runs, echo_cpu),
                    (f"{base}/v1/query", nwtn_body, nwtn_runs, nwtn_cpu),
                ):
                    before = serve_cpu_seconds()
                    runs.append(asyncio.run(load(url, body, clients, seconds / ROUNDS, key)))
                    after = serve_cpu_seconds()
                    for name in cpu:
                        cpu[name] += after.get(name, 0.0) - before.get(name, 0.0)
            echo, nwtn = summary(echo_runs), summary(nwtn_runs)
            # Where a request's CPU goes: per Serve process, ms of CPU per answered request.
            echo["cpu_ms_per_request"] = cpu_per(echo_cpu, echo["requests"], ("ProxyActor", "Echo"))
            nwtn["cpu_ms_per_query"] = cpu_per(nwtn_cpu, nwtn["requests"], SERVE_PROCESSES[:-1])
            rows.append(
                {
                    "clients": clients,
                    "echo": echo,
                    "nwtn": nwtn,
                    "rounds": ROUNDS,
                    "round_ratios": [
                        round(len(n["latencies"]) / n["elapsed"] / (len(e["latencies"]) / e["elapsed"]), 3)
                        for e, n in zip(echo_runs, nwtn_runs, strict=True)
                    ],
                    "throughput_ratio": nwtn["throughput_rps"] / echo["throughput_rps"],
                }
            )
    finally:
        peak.stop()
        serve.shutdown()
        ray.shutdown()
    return {"rows": rows, "peak_rss_bytes": peak.peak_rss, "peak_pss_bytes": peak.peak_pss}


def measure_demo() -> dict:
    """Wall time of `prsm demo` to its answer (venv and converted model present)."""
    env = dict(os.environ)
    env.update(
        PRSM_DATA_DIR=tempfile.mkdtemp(prefix="prsm-demo-"),
        PRSM_MODEL_DIR=str(MODEL_DIR),
        PRSM_PORT=str(free_port()),
    )
    prsm = Path(sys.executable).with_name("prsm")
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(prsm), "demo"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    first_answer_s = None
    output = []
    for line in process.stdout:
        output.append(line)
        if first_answer_s is None and line.startswith("Answer"):
            first_answer_s = time.perf_counter() - started
    rc = process.wait()
    total_s = time.perf_counter() - started
    if rc != 0 or first_answer_s is None:
        raise RuntimeError("prsm demo failed:\n" + "".join(output[-40:]))
    reported = re.search(r"first answer (\d+) s after start", "".join(output))
    return {
        "demo_to_first_answer_s": first_answer_s,
        "demo_total_s_including_shutdown": total_s,
        "demo_reported_first_answer_s": int(reported[1]) if reported else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 s per load level and system instead of 20 s")
    parser.add_argument("--skip-demo", action="store_true", help="leave out the demo timing")
    parser.add_argument(
        "--no-limits", action="store_true", help="the key without limits (to see what the limiter costs)"
    )
    args = parser.parse_args()
    seconds = 8.0 if args.quick else 20.0

    serve_result = measure_serve(seconds, limits=not args.no_limits)
    demo_result = {} if args.skip_demo else measure_demo()

    print(f"\n{'clients':>7} | {'echo rps':>9} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'nwtn rps':>9} {'p50 ms':>7} {'p99 ms':>7} | ratio")  # fmt: skip
    for row in serve_result["rows"]:
        e, n = row["echo"], row["nwtn"]
        print(
            f"{row['clients']:>7} | {e['throughput_rps']:>9.1f} {e['p50_ms']:>7.1f} {e['p99_ms']:>7.1f} | "
            f"{n['throughput_rps']:>9.1f} {n['p50_ms']:>7.1f} {n['p99_ms']:>7.1f} | {row['throughput_ratio']:.2f}"
        )
    at32 = next(r for r in serve_result["rows"] if r["clients"] == 32)
    print(f"\nthroughput ratio at 32 clients: {at32['throughput_ratio']:.2f} (target >= {TARGET}); "
          f"round by round: {at32['round_ratios']}")  # fmt: skip
    cpu = at32["nwtn"]["cpu_ms_per_query"]
    print("CPU ms per NWTN query at 32 clients: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    cpu = at32["echo"]["cpu_ms_per_request"]
    print("CPU ms per echo request at 32 clients: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    print(
        f"peak memory of all Ray processes, default model loaded: "
        f"RSS sum {serve_result['peak_rss_bytes'] / GiB:.2f} GiB, "
        f"PSS sum {serve_result['peak_pss_bytes'] / GiB:.2f} GiB (target < 6 GiB)"
    )
    if demo_result:
        print(f"prsm demo to first answer: {demo_result['demo_to_first_answer_s']:.1f} s")

    result = {
        "benchmark": "serve_overhead",
        "quick": args.quick,
        "key_limits": not args.no_limits,
        "seconds_per_level": seconds,
        "machine": machine(),
        "rows": serve_result["rows"],
        "throughput_ratio_at_32_clients": at32["throughput_ratio"],
        "throughput_ratio_target": TARGET,
        "peak_memory_rss_sum_gib": serve_result["peak_rss_bytes"] / GiB,
        "peak_memory_pss_sum_gib": serve_result["peak_pss_bytes"] / GiB,
        "peak_memory_target_gib": 6,
        **demo_result,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
