"""Requests lost while `serve deploy` rolls out a changed config under steady load.

What an operator does, with the operator's own commands: `ray start --head`, `serve deploy` of
deployments/prsm.yaml (a copy with this run's port and data folder), a steady open-loop load of
paid queries with an API key (RATE a second: unit conversions through the tool replica, and
every LM_EVERY-th a language-model question), then, mid-load, `serve deploy` of the same file
with a changed setting (every deployment's init arguments change, so Serve replaces every
replica: NWTN, Router, LMReplica, ToolReplica) and the load runs on until the new version has
served for a while. Each request is sent on schedule whatever the others do, so a stall shows
as errors or latency rather than as fewer requests.

Reports requests sent, answered 200, and every other outcome (status or exception) before,
during and after the rollout; p50/p99 latency per phase; the rollout's time (from `serve deploy`
to every old replica gone). Target (issue 13): zero lost requests through the redeploy. The
baseline is the same load with no redeploy (the phase before it), so the ratio of the success
rate during the rollout to the one before is printed.

    python benchmarks/redeploy.py [--quick]
Writes benchmarks/results/redeploy.json. Needs no Ray running on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.services
from machine import machine  # noqa: E402  (benchmarks/machine.py)

from prsm.services import Services  # noqa: E402
from prsm.settings import Settings, apply_ray_env  # noqa: E402
from tests.services import free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "redeploy.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
RATE = 4.0  # requests a second, steady
LM_EVERY = 8  # every 8th request asks the language model
BIN = Path(sys.executable).parent


def run(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def serve_status(env: dict) -> dict:
    done = run(str(BIN / "serve"), "status", env=env, timeout=60)
    return yaml.safe_load(done.stdout) if done.returncode == 0 else {}


def replicas(env: dict) -> set[str]:
    """Actor ids of the live Serve replicas (each replica is an actor named SERVE_REPLICA::...)."""
    from ray.util.state import list_actors

    return {
        a.actor_id
        for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
        if (a.name or "").startswith("SERVE_REPLICA")
    }


def wait_running(env: dict, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        apps = serve_status(env).get("applications", {})
        app = apps.get("prsm", {})
        if app.get("status") == "RUNNING" and all(
            d.get("status") == "HEALTHY" for d in app.get("deployments", {}).values()
        ):
            return
        time.sleep(1)
    raise SystemExit(f"the app did not reach RUNNING in {timeout_s:.0f} s: {serve_status(env)}")


def config(port: int, folder: Path, args: dict) -> Path:
    spec = yaml.safe_load((REPO / "deployments" / "prsm.yaml").read_text())
    spec["http_options"]["port"] = port
    spec["applications"][0]["args"] = args
    path = folder / f"prsm-{len(list(folder.glob('prsm-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


async def steady_load(base: str, key: str, stop: asyncio.Event, log: list[dict]) -> None:
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:

        async def one(i: int, sent: float) -> None:
            prompt = (
                "In one sentence, what is entropy?"
                if i % LM_EVERY == 0
                else f"Convert {i % 97 + 1} km to miles"
            )
            try:
                r = await client.post("/v1/query", json={"prompt": prompt})
                outcome = (
                    str(r.status_code)
                    if r.status_code != 200 or r.json()["status"] == "completed"
                    else r.json()["status"]
                )
            except Exception as exc:  # a connection reset, a timeout: lost
                outcome = type(exc).__name__
            log.append({"i": i, "sent": sent, "latency": time.monotonic() - sent, "outcome": outcome})

        start, tasks, i = time.monotonic(), [], 0
        while not stop.is_set():
            now = time.monotonic()
            due = start + i / RATE
            if now < due:
                await asyncio.sleep(due - now)
                continue
            tasks.append(asyncio.create_task(one(i, time.monotonic())))
            i += 1
        await asyncio.gather(*tasks)


def phase(log: list[dict], start: float, end: float) -> dict:
    rows = [r for r in log if start <= r["sent"] < end]
    ok = [r["latency"] for r in rows if r["outcome"] == "200"]
    lat = sorted(ok)
    other: dict[str, int] = {}
    for r in rows:
        if r["outcome"] != "200":
            other[r["outcome"]] = other.get(r["outcome"], 0) + 1
    return {
        "sent": len(rows),
        "ok": len(ok),
        "lost": len(rows) - len(ok),
        "lost_by_outcome": other,
        "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter phases (20 s before, 20 s after)")
    args = p.parse_args()
    before_s, after_s = (20.0, 20.0) if args.quick else (60.0, 60.0)

    env = apply_ray_env()
    if run(str(BIN / "ray"), "status", env=env, timeout=60).returncode == 0:
        raise SystemExit("a Ray cluster is running on this machine: stop it (ray stop) first")
    folder = Path(tempfile.mkdtemp(prefix="prsm-redeploy-"))
    port = free_port()
    settings = Settings(data_dir=folder / "data", model_dir=MODEL_DIR, port=port, _env_file=None)
    env = {
        **env,
        "PRSM_DATA_DIR": str(settings.data_dir),
        "PRSM_MODEL_DIR": str(MODEL_DIR),
        "PRSM_PORT": str(port),
    }
    with Services.from_settings(settings, upgrade=True) as services:
        key = services.keys.create("bench", "user")[0]
        services.ledger.mint("bench", 10**24, "bench-faucet")
    cpus = os.cpu_count() or 2
    started = run(str(BIN / "ray"), "start", "--head", f"--num-cpus={cpus}", "--disable-usage-stats",
                  "--dashboard-host=127.0.0.1", env=env, timeout=180)  # fmt: skip
    if started.returncode != 0:
        raise SystemExit(f"ray start failed: {started.stderr}")
    try:
        import ray

        ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
        t = time.monotonic()
        first = run(str(BIN / "serve"), "deploy", str(config(port, folder, {})), env=env)
        assert first.returncode == 0, first.stderr
        wait_running(env, 600)
        base = f"http://127.0.0.1:{port}"
        warm = httpx.post(f"{base}/v1/query", json={"prompt": "In one sentence, what is entropy?"},
                          headers={"authorization": f"Bearer {key}"}, timeout=300)  # fmt: skip
        assert warm.status_code == 200, warm.text
        deploy_s = time.monotonic() - t
        print(f"deployed and warm in {deploy_s:.0f} s; steady load {RATE}/s", flush=True)

        log: list[dict] = []
        rollout: dict = {}

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(steady_load(base, key, stop, log))
            await asyncio.sleep(before_s)
            old = replicas(env)
            rollout["start"] = time.monotonic()
            changed = config(port, folder, {"max_new_tokens": 80})  # a changed setting: new replicas
            done = await asyncio.to_thread(run, str(BIN / "serve"), "deploy", str(changed), env=env)
            assert done.returncode == 0, done.stderr
            while old & replicas(env):  # until every old replica is gone
                await asyncio.sleep(0.5)
            await asyncio.to_thread(wait_running, env, 600)
            rollout["end"] = time.monotonic()
            print(f"rollout done in {rollout['end'] - rollout['start']:.1f} s", flush=True)
            await asyncio.sleep(after_s)
            stop.set()
            await load  # every request sent is answered (or fails) and counted

        asyncio.run(scenario())
        t0, t1 = rollout["start"], rollout["end"]
        results = {
            "machine": machine(),
            "quick": args.quick,
            "rate_per_s": RATE,
            "first_deploy_seconds": round(deploy_s, 1),
            "rollout_seconds": round(t1 - t0, 1),
            "before": phase(log, 0, t0),
            "during": phase(log, t0, t1),
            "after": phase(log, t1, float("inf")),
        }
        sent = sum(results[k]["sent"] for k in ("before", "during", "after"))
        lost = sum(results[k]["lost"] for k in ("before", "during", "after"))
        results["requests_sent"], results["requests_lost"] = sent, lost
        b, d = results["before"], results["during"]
        results["success_during_vs_before_ratio"] = round(
            (d["ok"] / d["sent"] if d["sent"] else 1) / (b["ok"] / b["sent"] if b["sent"] else 1), 4
        )
    finally:
        with_ray = sys.modules.get("ray")
        if with_ray is not None and with_ray.is_initialized():
            with_ray.shutdown()
        run(str(BIN / "ray"), "stop", "--force", env=env, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("before", "during", "after"):
        r = results[name]
        print(f"{name:7} sent {r['sent']:4}  ok {r['ok']:4}  lost {r['lost']:3} {r['lost_by_outcome'] or ''}  "
              f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms")  # fmt: skip
    print(f"rollout {results['rollout_seconds']} s; lost {lost} of {sent}; "
          f"success during/before ratio {results['success_during_vs_before_ratio']}")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
