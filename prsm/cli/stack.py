"""`prsm up|down|demo`: the embedded stack (a local Ray and the Serve app) on this machine."""

from __future__ import annotations

import argparse
import os
import pkgutil
import subprocess
import time
import uuid

from prsm.cli.common import CLIError, api, console, print_trace, ray_bin, wait_until_ok
from prsm.ftns.amounts import FTNS
from prsm.keys import DEV_ACCOUNT, provision
from prsm.services import Services
from prsm.settings import Settings, apply_ray_env

DEMO_PROMPT = (
    "Differentiate x^3*sin(x) with respect to x, then evaluate that at x = 1. "
    "Convert 42 km to miles. In one sentence, what is entropy?"
)
RAY_MARKER = "ray-started-by-prsm"
# The Serve application, named by its import path as deployments/prsm.yaml names it: the CLI
# starts the same app `serve run deployments/prsm.yaml` does (the library never imports it).
APP_IMPORT_PATH = "deployments.app:build_app"


def add(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start local Ray (if needed) and the Serve app; return when healthy")
    up.add_argument("--timeout", type=float, default=600)
    up.add_argument(
        "--monitor",
        action="store_true",
        help="also start Prometheus with monitoring/'s config and alert rules",
    )
    up.set_defaults(fn=lambda args, services: start(services, args.timeout, args.monitor))
    down = sub.add_parser("down", help="stop the Serve app and the local Ray `prsm up` started")
    down.set_defaults(fn=lambda args, services: stop(services.settings))
    demo = sub.add_parser("demo", help="up, ask a multi-part question, print answer and trace, down")
    demo.add_argument("--timeout", type=float, default=600)
    demo.add_argument("--keep", action="store_true", help="leave the app running afterwards")
    demo.set_defaults(fn=run_demo)


def ray_running(env: dict[str, str]) -> bool:
    result = subprocess.run([ray_bin("ray"), "status"], env=env, capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def start(services: Services, timeout_s: float, monitor: bool = False) -> None:
    settings = services.settings
    env = apply_ray_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services.db.upgrade()
    provision(services.keys, settings.keys_file, settings.operator_account)
    address = settings.ray_address
    if address is None:
        if ray_running(env):
            console.print("using the Ray cluster already running on this machine")
        else:
            cpus = settings.ray_num_cpus or os.cpu_count() or 2
            console.print(f"starting a local Ray head ({cpus} CPUs)")
            started = subprocess.run(
                [ray_bin("ray"), "start", "--head", f"--num-cpus={cpus}", "--dashboard-host=127.0.0.1",
                 f"--metrics-export-port={settings.metrics_port}", "--disable-usage-stats"],
                env=env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            if started.returncode != 0:
                raise CLIError(f"ray start failed:\n{started.stdout}\n{started.stderr}")
            (settings.data_dir / RAY_MARKER).write_text("1\n")
        address = "auto"

    import ray  # the Ray-touching commands import it; the others stay fast
    from ray import serve

    build_app = pkgutil.resolve_name(APP_IMPORT_PATH)
    t0 = time.perf_counter()
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        console.print("deploying the Serve app (first run converts the default model, ~30 s)")
        serve.run(build_app(settings.portable()), name="prsm", route_prefix="/", blocking=False)
        wait_healthy(settings.base_url, timeout_s)
    finally:
        ray.shutdown()
    console.print(f"PRSM is up at {settings.base_url} ({time.perf_counter() - t0:.0f} s)")
    console.print(f"API keys (operator, development) in {settings.keys_file}")
    if monitor:
        import prsm.cli.monitor as prometheus

        # Ray's discovery file names every node when the head has a dashboard; else this node.
        targets = None if prometheus.RAY_DISCOVERY_FILE.is_file() else [f"127.0.0.1:{settings.metrics_port}"]
        prometheus.start(settings, targets)


def wait_healthy(base_url: str, timeout_s: float) -> None:
    wait_until_ok(f"{base_url}/healthz", "the app", timeout_s)


def stop(settings: Settings) -> None:
    import prsm.cli.monitor as prometheus

    if prometheus.stop(settings):
        console.print("Prometheus is stopped")
    env = apply_ray_env()
    marker = settings.data_dir / RAY_MARKER
    if ray_running(env):
        import ray
        from ray import serve

        ray.init(address=settings.ray_address or "auto", logging_level="ERROR", log_to_driver=False)
        serve.shutdown()
        ray.shutdown()
        console.print("the Serve app is shut down")
    if marker.exists():
        subprocess.run([ray_bin("ray"), "stop"], env=env, capture_output=True, timeout=120)
        marker.unlink()
        console.print("the local Ray that `prsm up` started is stopped")


def fund_demo_account(services: Services) -> None:
    """The demo pays for its query like anyone, with the development key: that key's account
    is topped up from the dev faucet."""
    ledger = services.ledger
    if ledger.balance(DEV_ACCOUNT) < FTNS // 10:
        ledger.mint(DEV_ACCOUNT, FTNS, f"demo-faucet-{uuid.uuid4()}", memo="dev faucet (prsm demo)")


def run_demo(args: argparse.Namespace, services: Services) -> None:
    settings = services.settings
    t0 = time.perf_counter()
    start(services, args.timeout)
    try:
        fund_demo_account(services)
        t_query = time.perf_counter()
        trace = api(settings, "POST", "/v1/query", json={"prompt": DEMO_PROMPT, "user": "demo"})
        console.print(f"\n[bold]Question[/bold]\n{DEMO_PROMPT}")
        print_trace(trace)
        console.print(
            f"first answer {time.perf_counter() - t0:.0f} s after start "
            f"(query {time.perf_counter() - t_query:.1f} s)"
        )
    finally:
        if not args.keep:
            stop(settings)
