"""Real services started on loopback for tests and benchmarks: a free port, a private PostgreSQL,
anvil, an IPFS node, a node's federation endpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request  # module level: the route's annotation is resolved from here


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


def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the server; its URL."""
    from sqlalchemy import create_engine, text

    name = f"prsm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def private_postgres(host: str = "127.0.0.1", allow: str | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on `host` (loopback by default), owned by the postgres
    user (initdb refuses root); fsync is off: the data is thrown away afterwards. `allow`: a
    network (CIDR) whose clients it trusts besides loopback. Yields its SQLAlchemy URL."""
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
    if allow:
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {allow} trust\n")
    listen = "127.0.0.1" if host == "127.0.0.1" else f"127.0.0.1,{host}"
    options = f"-c listen_addresses={listen} -p {port} -k {sock} -c fsync=off"
    subprocess.run([*as_postgres, bin_dir / "pg_ctl", "-D", data, "-o", options, "-w", "start",
                    "-l", root / "log"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://prsm@{host}:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


ANVIL = Path(__file__).resolve().parents[1] / "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


@contextmanager
def anvil_node() -> Iterator[tuple[str, list[str]]]:
    """A real anvil node (npm @foundry-rs/anvil-linux-amd64) on a free loopback port; yields its
    URL and the private keys of its development accounts, as anvil prints them at start."""
    import time

    import httpx

    if not ANVIL.exists():
        raise RuntimeError("anvil is missing: npm ci --prefix contracts (make install does)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--accounts", "10"]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"anvil did not start: {log.read()[-2000:]}") from None
                    time.sleep(0.05)
            log.seek(0)
            keys_part = log.read().split("Private Keys", 1)[1]
            yield url, [w for w in keys_part.split() if w.startswith("0x") and len(w) == 66]
        finally:
            process.terminate()
            process.wait(timeout=10)


JSIPFS = Path(__file__).resolve().parents[1] / "ipfs/node_modules/.bin/jsipfs"


@contextmanager
def ipfs_node(online: bool = False, host: str = "127.0.0.1") -> Iterator[str]:
    """A real IPFS node (js-ipfs from npm, Kubo-compatible RPC API) with its own repo on free
    ports of `host` (loopback by default); yields the RPC API's base URL
    (http://HOST:PORT/api/v0). Offline by
    default; `online` starts its libp2p swarm on loopback (no bootstrap peers, no mDNS), so
    nodes connected with `swarm/connect` exchange blocks over bitswap."""
    import time

    import httpx

    if not JSIPFS.exists():
        raise RuntimeError("js-ipfs is missing: npm install --prefix ipfs --no-save (make install does)")
    repo = Path(tempfile.mkdtemp(prefix="prsm-ipfs-"))
    env = {**os.environ, "IPFS_PATH": str(repo / "repo")}
    run = {"env": env, "check": True, "capture_output": True}
    subprocess.run([str(JSIPFS), "init", "--profile", "test"], **run)
    api, rpc = free_port(), free_port()
    # The repo's config file is edited here, not with `jsipfs config` (a Node.js start per key,
    # seconds each on these machines).
    config_file = repo / "repo" / "config"
    config = json.loads(config_file.read_text())
    config["Addresses"]["API"] = f"/ip4/{host}/tcp/{api}"
    config["Addresses"]["RPC"] = f"/ip4/127.0.0.1/tcp/{rpc}"
    if online:  # the test profile already has no bootstrap peers and no mDNS
        config["Addresses"]["Swarm"] = [f"/ip4/127.0.0.1/tcp/{free_port()}"]
    config_file.write_text(json.dumps(config, indent=2))
    url = f"http://{host}:{api}/api/v0"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [str(JSIPFS), "daemon", *([] if online else ["--offline"])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.post(f"{url}/id", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the IPFS node did not start: {log.read()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.rmtree(repo, ignore_errors=True)


class FederationServer:
    """A node's federation endpoint without Ray: PRSM's own FastAPI setup (auth middleware,
    limits, error bodies) with `POST /v1/federation/call` wired as deployments/app.py wires it,
    served by uvicorn on loopback in a thread. `nwtn` is the node's Orchestrator."""

    def __init__(self, services, nwtn, port: int):
        self.services, self.nwtn, self.port = services, nwtn, port
        self.url = f"http://127.0.0.1:{port}"
        self._server = self._thread = None

    def start(self) -> None:
        import threading
        import time

        import uvicorn

        from prsm.api.http import create_api
        from prsm.federation import serve

        api = create_api()

        @api.post(serve.PATH)
        async def call(request: Request) -> dict:
            headers = {k: v for k, v in request.headers.items() if k.startswith("x-prsm-")}
            return await serve.answer(self.services, self.nwtn, headers, await request.body())

        config = uvicorn.Config(api, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the federation server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
