"""A load test that holds (issue 16 §5): 500 concurrent connections for 60 s against /v1/query.

One local Ray runs the whole app as `prsm up` does (deployments/app.py, default settings), with
two language models loaded: the default SmolLM2-135M-Instruct and a second card of the same kind
on its own copy of the weights (registered by an owner, warmed with a completion). 50 accounts,
each with its own API key; 10 of the keys have a low request limit (30 a minute), the others
generous ones. Each of 500 connections (one keep-alive HTTP connection each) sends queries in
a closed loop for 60 s: a mix of unit conversions, calculus and one-sentence explanations (the
language model's), worded with varying numbers and topics. After a 429 or a 503 a connection
waits half a second (an impatient client, not one that honours Retry-After) and goes on.

Targets: every answer is a 200, a 429 or a 503 with Retry-After (no other status, no request
without an answer within 120 s); GET /healthz answers within 1 s right after the 60 s (while
the last queries drain) and after the drain, timed by a probe process of its own (as a load
balancer's); the peak memory of all Ray processes (PSS: shared
pages counted once) stays under 6 GiB with both language models loaded. Reported: the count of
each answer, p50/p99 latency of the 200s and of the refusals, throughput of answered queries,
the sub-task cache's hit rate over the answered language-model sub-tasks; and the baseline side
by side: the same mix over 8 connections for 20 s before the load (throughput and latency
without overload), with the ratio of the two throughputs.

    python benchmarks/load.py [--quick]        (--quick: 15 s of load, 10 s of baseline)
Writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from machine import machine, report  # noqa: E402  (benchmarks/machine.py)
from serve_overhead import PeakMemory  # noqa: E402  (all Ray processes' memory, sampled)

from prsm.settings import apply_ray_env  # noqa: E402
from prsm.types import KeyLimits  # noqa: E402
from tests.services import free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "load.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
GiB = 1024**3
CONNECTIONS, SECONDS, BASELINE_CONNECTIONS = 500, 60.0, 8
CLIENT_TIMEOUT_S = 120.0  # a request without an answer by then counts as a hang
HEALTHZ_LIMIT_S, MEMORY_LIMIT = 1.0, 6 * GiB
ACCOUNTS, LIMITED = 50, 10
ALLOWED = {200, 429, 503}
TOPICS = ["entropy", "a photon", "an enzyme", "a catalyst", "inertia", "a gene", "osmosis", "a black hole",
          "momentum", "an isotope", "diffusion", "a vaccine", "torque", "a neutron", "pH", "a prime number"]  # fmt: skip

apply_ray_env()  # the same Ray environment as `prsm up`


def prompt_for(i: int) -> str:
    """The workload: 2 of 5 unit conversions, 1 of 5 calculus, 2 of 5 explanations."""
    kind = i % 5
    if kind in (0, 1):
        return f"Convert {i % 997 + 1} km to miles."
    if kind == 2:
        return f"Integrate x^{i % 7 + 1} from 0 to {i % 5 + 1}."
    return f"In one sentence, what is {TOPICS[i % len(TOPICS)]}?"


class Tally:
    def __init__(self):
        self.by_status: dict[str, int] = {}
        self.latency: dict[str, list[float]] = {"ok": [], "refused": []}
        self.no_retry_after = 0
        self.lm_tasks = self.lm_cached = 0
        self.examples: dict[str, str] = {}

    def add(self, status: str, seconds: float, response: httpx.Response | None) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == "200":
            self.latency["ok"].append(seconds)
            for task in response.json()["tasks"]:
                if task["capability"] == "general" and task["status"] == "done":
                    self.lm_tasks += 1
                    self.lm_cached += bool(task.get("cached"))
        elif status in ("429", "503"):
            self.latency["refused"].append(seconds)
            if "retry-after" not in response.headers:
                self.no_retry_after += 1
        if status not in ("200", "429", "503") and status not in self.examples:
            self.examples[status] = (response.text if response is not None else "")[:500]

    @property
    def bad(self) -> int:
        return self.no_retry_after + sum(n for s, n in self.by_status.items() if int(s) not in ALLOWED)


async def closed_loop(
    base: str, keys: list[str], connections: int, seconds: float
) -> tuple[Tally, float, float]:
    """`connections` connections, each sending the next query once its last is answered, for
    `seconds`. Returns the tally, the seconds until the last answer, and /healthz's seconds
    when the sending stopped (the queries still in flight draining)."""
    tally = Tally()
    deadline = time.perf_counter() + seconds
    # One client whose pool opens a connection per concurrent request (500 clients would each
    # build an SSL context: seconds of CPU on this machine before the first request).
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S, limits=limits)

    async def connection(c: int) -> None:
        rng = random.Random(c)
        headers = {"authorization": f"Bearer {keys[c % len(keys)]}"}
        await asyncio.sleep(rng.random() * 2)  # connections open over the first 2 s
        i = c * 100_003
        while time.perf_counter() < deadline:
            i += 1
            started = time.perf_counter()
            try:
                response = await client.post("/v1/query", json={"prompt": prompt_for(i)}, headers=headers)
            except httpx.TimeoutException:
                tally.add("-1", time.perf_counter() - started, None)  # a hang
                continue
            except httpx.HTTPError as exc:
                tally.add("-2", time.perf_counter() - started, None)  # a connection error
                tally.examples.setdefault("-2", f"{type(exc).__name__}: {exc}"[:500])
                await asyncio.sleep(0.5)
                continue
            tally.add(str(response.status_code), time.perf_counter() - started, response)
            if response.status_code != 200:
                await asyncio.sleep(0.5)

    async def healthz_when_sending_stops() -> float:
        await asyncio.sleep(max(deadline - time.perf_counter(), 0))
        return await healthz(base)

    await healthz(base)  # the probe process started before the load
    started = time.perf_counter()
    probe = asyncio.ensure_future(healthz_when_sending_stops())
    async with client:
        await asyncio.gather(*(connection(c) for c in range(connections)))
    return tally, time.perf_counter() - started, await probe


# The probe runs in a process of its own, as a load balancer's would: timed here, the answer
# would wait on this process's own event loop, busy with the 500 connections.
PROBE = """
import sys, time, httpx
for url in sys.stdin:
    started = time.perf_counter()
    try:
        ok = httpx.get(url.strip(), timeout=30).status_code == 200
    except httpx.HTTPError:
        ok = False
    print(time.perf_counter() - started if ok else "inf", flush=True)
"""
_probe: subprocess.Popen | None = None


async def healthz(base: str) -> float:
    """Seconds for GET /healthz on a new connection, from the probe process (not a 200: inf)."""
    global _probe
    if _probe is None:
        _probe = subprocess.Popen([sys.executable, "-c", PROBE], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        _probe.stdin.write(f"{base}/healthz\n")  # the first, to have httpx imported and ready
        _probe.stdin.flush()
        await asyncio.to_thread(_probe.stdout.readline)
    _probe.stdin.write(f"{base}/healthz\n")
    _probe.stdin.flush()
    return float(await asyncio.to_thread(_probe.stdout.readline))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


def figures(tally: Tally, elapsed: float, connections: int) -> dict:
    answered = sum(tally.by_status.values())
    return {
        "connections": connections,
        "seconds": round(elapsed, 2),
        "answers": answered,
        "by_status": dict(sorted(tally.by_status.items())),
        "ok_per_s": round(tally.by_status.get("200", 0) / elapsed, 2),
        "answers_per_s": round(answered / elapsed, 2),
        "ok_p50_ms": percentile(tally.latency["ok"], 0.5),
        "ok_p99_ms": percentile(tally.latency["ok"], 0.99),
        "refused_p50_ms": percentile(tally.latency["refused"], 0.5),
        "refused_p99_ms": percentile(tally.latency["refused"], 0.99),
        "refusals_without_retry_after": tally.no_retry_after,
        "bad_answers": tally.bad,
        "bad_answer_ratio": round(tally.bad / max(answered, 1), 4),
        "lm_subtasks_answered": tally.lm_tasks,
        "cache_hit_ratio": round(tally.lm_cached / tally.lm_tasks, 3) if tally.lm_tasks else None,
        "bad_examples": tally.examples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s of load, 10 s of baseline")
    args = parser.parse_args()
    seconds, baseline_s = (15.0, 10.0) if args.quick else (SECONDS, 20.0)

    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings
    from prsm.types import ModelCard

    port = free_port()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="prsm-load-")), model_dir=MODEL_DIR, port=port,
                        _env_file=None)  # fmt: skip
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    peak = PeakMemory(every_s=2.0)
    peak.start()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        keys = []
        with Services(settings) as services:
            weights = services.registry.get("smollm2-135m-instruct").weights
            services.ledger.open_account("owner")
            services.registry.register(ModelCard(
                "smollm2-second", "transformers", "SmolLM2-135M-Instruct, a second owner's copy", "owner",
                "Apache-2.0", tags=("general",), weights=weights, price_per_1k_tokens=2 * 10**15))  # fmt: skip
            for a in range(ACCOUNTS):
                account = f"load-{a}"
                limits = KeyLimits(rpm=30) if a < LIMITED else KeyLimits(rpm=100_000, concurrent=1000)
                token, _ = services.keys.create(account, limits=limits)
                services.ledger.mint(account, 10**21, f"load-faucet-{a}")
                keys.append(token)
        warmer = {"authorization": f"Bearer {keys[LIMITED]}"}
        for model in ("smollm2-135m-instruct", "smollm2-second"):  # both language models loaded
            warm = httpx.post(f"{base}/v1/chat/completions", headers=warmer, timeout=300, json={
                "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
            warm.raise_for_status()
        unlimited = keys[LIMITED:]
        print(f"baseline: {BASELINE_CONNECTIONS} connections for {baseline_s:g} s ...", flush=True)
        base_tally, base_elapsed, _ = asyncio.run(
            closed_loop(base, unlimited, BASELINE_CONNECTIONS, baseline_s)
        )
        baseline = figures(base_tally, base_elapsed, BASELINE_CONNECTIONS)
        print(baseline, flush=True)
        print(f"load: {CONNECTIONS} connections for {seconds:g} s ...", flush=True)
        tally, elapsed, healthz_at_end = asyncio.run(closed_loop(base, keys, CONNECTIONS, seconds))
        healthz_after_drain = asyncio.run(healthz(base))
        load = figures(tally, elapsed, CONNECTIONS)
        print(load, flush=True)
    finally:
        peak.stop()
        serve.shutdown()
        ray.shutdown()
    result = {
        "machine": machine(),
        "quick": args.quick,
        "load": load,
        "baseline": baseline,
        "throughput_ratio_load_vs_baseline": round(load["ok_per_s"] / max(baseline["ok_per_s"], 1e-9), 3),
        "healthz_when_sending_stopped_s": round(healthz_at_end, 3),
        "healthz_after_drain_s": round(healthz_after_drain, 3),
        "healthz_ratio": round(max(healthz_at_end, healthz_after_drain) / HEALTHZ_LIMIT_S, 3),
        "peak_pss_gib": round(peak.peak_pss / GiB, 2),
        "peak_rss_gib": round(peak.peak_rss / GiB, 2),
        "memory_ratio": round(peak.peak_pss / MEMORY_LIMIT, 3),
        "language_models_loaded": 2,
    }
    result["targets_met"] = {
        "only_200_429_503_with_retry_after": load["bad_answers"] == 0 and baseline["bad_answers"] == 0,
        "healthz_within_1_s": result["healthz_ratio"] <= 1.0,
        "memory_under_6_gib": result["memory_ratio"] < 1.0,
    }
    report(result, RESULTS)


if __name__ == "__main__":
    main()
