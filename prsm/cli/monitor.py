"""`prsm up --monitor`: a Prometheus beside the app, with the repository's scrape config and alert
rules (monitoring/), scraping Ray's metrics endpoint (PRSM's ray_prsm_* and Serve's series).

Prometheus is Debian's `prometheus` package (it brings `promtool`); Grafana is not packaged
there, so the dashboard is JSON to import (monitoring/grafana/prsm.json).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from prsm.cli.common import CLIError, console, wait_until_ok
from prsm.settings import Settings

# The repository's monitoring/ folder; a wheel ships it as the package prsm.monitoring.
_SHIPPED = Path(__file__).resolve().parents[1] / "monitoring"
MONITORING_DIR = (
    _SHIPPED
    if (_SHIPPED / "prometheus.yml").is_file()
    else Path(__file__).resolve().parents[2] / "monitoring"
)
# Written by the Ray head's dashboard: the metrics address of every node of the cluster.
RAY_DISCOVERY_FILE = (
    Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "prom_metrics_service_discovery.json"
)
PID_FILE = "prometheus.pid"


def prepare(folder: Path, targets: list[str] | None = None) -> Path:
    """Copy the scrape config and alert rules to `folder` and write its targets.json: `targets`
    (host:port of Ray metrics endpoints), else Ray's discovery file. Returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copyfile(MONITORING_DIR / name, folder / name)
    if targets:
        groups = [{"targets": targets, "labels": {}}]
    elif RAY_DISCOVERY_FILE.is_file():
        groups = json.loads(RAY_DISCOVERY_FILE.read_text())
    else:
        raise CLIError(
            f"no metrics targets: name them, or start Ray with its dashboard ({RAY_DISCOVERY_FILE})"
        )
    (folder / "targets.json").write_text(json.dumps(groups, indent=2) + "\n")
    return folder / "prometheus.yml"


def command(config: Path, data: Path, port: int) -> list[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise CLIError("Prometheus is not installed: `apt-get install prometheus` (Debian's package)")
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]


def wait_ready(base_url: str, process: subprocess.Popen | None = None, timeout_s: float = 60) -> None:
    wait_until_ok(f"{base_url}/-/ready", "Prometheus", timeout_s, process)


def start(settings: Settings, targets: list[str] | None = None) -> str:
    """Start Prometheus in the background under data_dir/prometheus; returns its URL."""
    folder = settings.data_dir / "prometheus"
    stop(settings)  # one at a time: a previous one's port and database are ours again
    config = prepare(folder, targets)
    log = open(folder / "prometheus.log", "ab")  # noqa: SIM115 (the child keeps it open)
    process = subprocess.Popen(
        command(config, folder / "data", settings.prometheus_port),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    (folder / PID_FILE).write_text(f"{process.pid}\n")
    url = f"http://127.0.0.1:{settings.prometheus_port}"
    wait_ready(url, process)
    console.print(
        f"Prometheus is up at {url}, scraping {', '.join(t for g in json.loads((folder / 'targets.json').read_text()) for t in g['targets'])}"
    )
    return url


def stop(settings: Settings) -> bool:
    """Stop the Prometheus `start` left running; False if there was none."""
    pid_file = settings.data_dir / "prometheus" / PID_FILE
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        # The pid may have been reused since (a reboot, a crash): signal only a Prometheus.
        if b"prometheus" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        return False
    for _ in range(100):  # it flushes its database on SIGTERM
        if _gone(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def _gone(pid: int) -> bool:
    try:  # our own child (started in this process): reap it
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # another process's (`prsm up` exited since): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
