"""Real services, started once per test session: a private PostgreSQL cluster, a local Ray
with the PRSM Serve app (the real default model included)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing: apt-get install postgresql (.ci/run does)")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on loopback, owned by the postgres user (initdb refuses root)."""
    bin_dir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="prsm-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run([*as_postgres, bin_dir / "initdb", "-D", data, "--auth=trust", "-U", "prsm"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
    subprocess.run([*as_postgres, bin_dir / "pg_ctl", "-D", data, "-o", options, "-w", "start",
                    "-l", root / "log"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://prsm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def prsm_app(tmp_path_factory):
    """The whole Serve app on a local Ray, on a free port; yields (base_url, settings)."""
    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.settings import Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("prsm-app"), model_dir=MODEL_DIR, port=free_port(), _env_file=None
    )
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
    serve.run(build_app(settings.model_dump(mode="json")), name="prsm", route_prefix="/")
    deadline = time.monotonic() + 120
    while httpx.get(f"{settings.base_url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the app never became healthy"
        time.sleep(0.5)
    yield settings.base_url, settings
    serve.shutdown()
    ray.shutdown()
