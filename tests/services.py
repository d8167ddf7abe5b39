"""Real services started on loopback for tests and benchmarks: a free port, a private PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries are missing: apt-get install postgresql (.ci/run does)"
        )
    return found[-1].parent


@contextmanager
def private_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback, owned by the postgres user (initdb refuses
    root); fsync is off: the data is thrown away afterwards. Yields its SQLAlchemy URL."""
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
