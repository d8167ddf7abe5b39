"""Two real hosts on one machine, for `ray up`: each a Linux network namespace on a bridge, with
its own PID and mount namespaces (so `ray stop` on one host stops only that host's Ray), its own
Ray session folder and PRSM data folder (`PRIVATE`), running its own sshd. The machine's
filesystem is otherwise shared, as a cluster's checkout on every node at the same path would be.

    with two_hosts(folder) as hosts:
        hosts.head, hosts.worker, hosts.bridge       # addresses
        hosts.run("head", "curl", ...)               # a command inside a host's network
Needs root, iproute2, util-linux's unshare, openssh-server (sshd) and rsync (.ci/run installs
them). Leaving the block (or a crash of this process: --kill-child) stops every process of both
hosts and removes the namespaces and the bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BRIDGE = "prsmbr0"
SUBNET = "10.213.0"
HOSTS = {"head": f"{SUBNET}.2", "worker": f"{SUBNET}.3"}
# Each host's own folders (a tmpfs mounted in its mount namespace): Ray's session folder, and the
# PRSM data folder its settings name. The rest of the filesystem (the checkout, /var/tmp) is shared.
PRIVATE = ("/tmp/ray", "/tmp/prsm-host")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done


def missing() -> str | None:
    """Why two hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "rsync", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/sbin/sshd").exists():
        return "sshd is not installed (apt-get install openssh-server)"
    return None


@dataclass
class Hosts:
    folder: Path
    key: Path  # the SSH key that logs in as root on both hosts
    head: str = HOSTS["head"]
    worker: str = HOSTS["worker"]
    bridge: str = f"{SUBNET}.1"
    sshd: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(
        self, host: str, *args: str, timeout: float = 300, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """A command in a host's network namespace (the machine's processes otherwise)."""
        return subprocess.run(["ip", "netns", "exec", f"prsm-{host}", *args], capture_output=True, text=True,
                              timeout=timeout, env=env)  # fmt: skip

    def ssh(self, host: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command run on the host through its sshd, as `ray up` runs them."""
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", f"root@{HOSTS[host]}", command],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


def _clean() -> None:
    for host in HOSTS:
        sh("ip", "netns", "del", f"prsm-{host}", check=False)
        sh("ip", "link", "del", f"veth-{host}", check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


@contextmanager
def two_hosts(folder: Path, login_path: Path | None = None) -> Iterator[Hosts]:
    """`login_path`: a folder each host's login shells put on PATH, as an operator does with a
    file in /etc/profile.d (here a private copy of that folder, bound over it in the host's own
    mount namespace): `ray down` runs a bare `ray stop` on every node."""
    why = missing()
    if why:
        raise RuntimeError(f"two hosts cannot be made here: {why}")
    folder.mkdir(parents=True, exist_ok=True)
    _clean()
    hosts = Hosts(folder, folder / "id_ed25519")
    try:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{hosts.bridge}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hosts.key))
        shutil.copyfile(f"{hosts.key}.pub", folder / "authorized_keys")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for private in PRIVATE:  # mount points; the machine's own stay as they are
            Path(private).mkdir(parents=True, exist_ok=True)
        for host, ip in HOSTS.items():
            ns = f"prsm-{host}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", f"veth-{host}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", f"veth-{host}", "master", BRIDGE, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", hosts.bridge)
            home = folder / host
            home.mkdir()
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key"))
            (home / "sshd_config").write_text(
                f"ListenAddress {ip}\nPort 22\nHostKey {home / 'host_key'}\nPidFile {home / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "MaxStartups 100\nMaxSessions 100\n"
            )
            # bash is PID 1 of the host (it reaps the daemons Ray leaves to it); the host's Ray
            # folder and PRSM data folder are its own; --kill-child: when this process goes,
            # the whole host goes.
            profile = home / "profile.d"
            shutil.copytree("/etc/profile.d", profile) if Path("/etc/profile.d").is_dir() else profile.mkdir()
            if login_path is not None:
                (profile / "prsm.sh").write_text(f'export PATH="{login_path}:$PATH"\n')
            boot = (f"mount -t tmpfs tmpfs {PRIVATE[0]} && mount -t tmpfs tmpfs {PRIVATE[1]} && "
                    f"mount --bind {profile} /etc/profile.d && /usr/sbin/sshd -D -e -f {home / 'sshd_config'} & wait")  # fmt: skip
            hosts.sshd[host] = subprocess.Popen(
                ["ip", "netns", "exec", ns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                 "bash", "-c", boot],
                stdout=open(home / "sshd.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )  # fmt: skip
        deadline = time.monotonic() + 30
        for host in HOSTS:
            while hosts.ssh(host, "true", timeout=10).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd on {host} never answered: {(folder / host / 'sshd.log').read_text()}"
                    )
                time.sleep(0.3)
        yield hosts
    finally:
        for process in hosts.sshd.values():
            process.terminate()
        for process in hosts.sshd.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        _clean()


# --- the cluster on the two hosts: what an operator does, step by step, timed ------------------

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
TINY_STUDENT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 1, "head_dim": 32}  # fmt: skip


@dataclass
class Launch:
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    facts: dict[str, object] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str):
        started = time.perf_counter()
        yield
        self.steps[name] = round(time.perf_counter() - started, 1)
        print(f"  {name}: {self.steps[name]} s", flush=True)


def _cli(*args: str, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _wait(what: str, ok, timeout_s: float, every: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = ok()
        except Exception as exc:  # the dashboard not up yet, a node still joining
            value, last = None, exc
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout_s:.0f} s ({last})")
        time.sleep(every)


def launch(hosts: Hosts, folder: Path, database_url: str, ipfs_url: str, model_dir: Path, steps: int = 4,
           extra_env: dict[str, str] | None = None) -> Launch:  # fmt: skip
    """`ray up` the repository's ray_cluster.yaml (through `prsm cluster config`) on the two hosts,
    `serve deploy` the app, answer queries, find a model replica on the worker, run a distillation
    job through `ray job submit` whose training worker is on the worker, `ray down`."""
    import secrets

    from ray.util.state import list_actors, list_nodes

    from prsm.services import Services
    from prsm.settings import Settings

    out = Launch()
    dashboard = f"http://{hosts.head}:8265"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    shared = folder / "shared"  # what a cluster keeps on shared storage (NFS): checkpoints
    shared.mkdir(exist_ok=True)
    settings = {
        "PRSM_DATA_DIR": PRIVATE[1],  # each host's own folder: nothing shared through it
        "PRSM_MODEL_DIR": str(model_dir),
        "PRSM_DATABASE_URL": database_url,
        "PRSM_IPFS_URL": ipfs_url,
        "PRSM_DISTILL_DIR": str(shared / "distill"),
        "PRSM_SECRET_KEY": secrets.token_hex(32),
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",  # `python` in a job is the venv's
        "GLOO_SOCKET_IFNAME": "eth0",  # Train's collective backend: the host's interface
    }
    settings.update(extra_env or {})
    env_file = folder / "prsm.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env_file.chmod(0o600)

    with out.step("prepare (database, key)"):
        local = Settings(data_dir=folder / "operator", database_url=database_url, ipfs_url=ipfs_url,
                         model_dir=model_dir, _env_file=None)  # fmt: skip
        with Services.from_settings(local, upgrade=True) as services:
            key = services.keys.create("cluster-user", "user")[0]
            services.ledger.mint("cluster-user", 10**18, "cluster-faucet")
            prompts = "".join(f'{{"prompt": "{p}"}}\n' for p in ("What is entropy?", "Define osmosis.",
                              "Why is the sky blue?", "What is a catalyst?", "Explain momentum.", "Define pH."))  # fmt: skip
            data = services.store.put(prompts.encode())
            services.store.pin(data)
    cluster_yaml = folder / "cluster.yaml"
    _cli(str(BIN / "prsm"), "cluster", "config", "--head", hosts.head, "--worker", hosts.worker,
         "--ssh-key", str(hosts.key), "--env-file", str(env_file), "-o", str(cluster_yaml), env=env)  # fmt: skip

    with out.step("ray up"):
        _cli(str(BIN / "ray"), "up", "-y", "--no-config-cache", str(cluster_yaml), env=env, timeout=600)

    def two_alive():
        nodes = [n for n in list_nodes(address=dashboard) if n.state == "ALIVE"]
        return nodes if len(nodes) == 2 else None

    with out.step("worker joined"):
        nodes = _wait("two alive nodes", two_alive, 600)
        by_ip = {n.node_ip: n.node_id for n in nodes}
        out.facts["nodes"] = sorted(by_ip)

    try:
        with out.step("serve deploy"):
            _cli(
                str(BIN / "serve"),
                "deploy",
                str(REPO / "deployments/prsm.yaml"),
                "--address",
                dashboard,
                env=env,
            )

            def running():
                status = _cli(str(BIN / "serve"), "status", "--address", dashboard, env=env).stdout
                return (
                    "RUNNING" in status.split("deployments:")[0]
                    and "UNHEALTHY" not in status
                    and "DEPLOY_FAILED" not in status
                )

            _wait("the app RUNNING", running, 600, every=3)

        def post(path: str, body: dict) -> dict:
            """A request from inside the head host, to its Serve proxy on 127.0.0.1:8000."""
            code = ("import httpx, json, sys; r = httpx.post('http://127.0.0.1:8000' + sys.argv[1], timeout=300, "
                    "headers={'authorization': 'Bearer ' + sys.argv[2]}, json=json.loads(sys.argv[3])); "
                    "print(json.dumps({'status': r.status_code, 'body': r.json()}))")  # fmt: skip
            done = hosts.run("head", str(BIN / "python"), "-c", code, path, key, json.dumps(body))
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            return json.loads(done.stdout)

        with out.step("queries through the head's proxy"):
            answers = [
                post("/v1/query", {"prompt": p})
                for p in ("Convert 42 km to miles", "In one sentence, what is entropy?")
            ]
        out.facts["query_statuses"] = [(a["status"], a["body"].get("status")) for a in answers]
        if any(a["status"] != 200 for a in answers):
            raise RuntimeError(f"a query failed on the cluster: {answers}")
        out.facts["lm_model"] = answers[1]["body"]["tasks"][0]["model"]
        replicas = list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
        out.facts["replica_hosts"] = sorted(
            {
                (a.class_name.rsplit(":", 1)[-1], next(ip for ip, n in by_ip.items() if n == a.node_id))
                for a in replicas
                if a.class_name.startswith("ServeReplica")
            }  # fmt: skip
        )

        with out.step("ray job submit: distillation"):
            job = _cli(str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", str(REPO), "--",
                       str(BIN / "python"), "jobs/distill.py", "--teacher", "smollm2-135m-instruct", "--student",
                       json.dumps(TINY_STUDENT), "--data", data, "--steps", str(steps), "--checkpoint-every",
                       str(max(1, steps // 2)), "--batch-size", "2", "--max-new-tokens", "8", "--speed-tokens", "4",
                       "--name", "cluster-student", env=env, timeout=1200)  # fmt: skip
        out.facts["job_tail"] = job.stdout[-600:]
        trainers = list_actors(
            address=dashboard, filters=[("class_name", "=", "RayTrainWorker")], detail=True, limit=100
        )
        out.facts["train_worker_hosts"] = sorted(
            {next(ip for ip, n in by_ip.items() if n == a.node_id) for a in trainers}
        )
        out.facts["checkpoints_on_shared_storage"] = len(list((shared / "distill").glob("*/checkpoint_*")))
        with out.step("the student answers from the worker"):
            chat = {
                "model": "cluster-student",
                "messages": [{"role": "user", "content": "What is entropy?"}],
                "max_tokens": 8,
            }
            answer = post("/v1/chat/completions", chat)
            out.facts["student_answer"] = answer["status"]
    finally:
        with out.step("ray down"):
            _cli(str(BIN / "ray"), "down", "-y", str(cluster_yaml), env=env, timeout=300)
    # `ray down` with the local provider runs `ray stop` on the head only; a worker's raylet
    # exits by itself once it has lost the head for Ray's GCS reconnect timeout (60 s).
    left = "ps -eo args | grep -E '[r]aylet/raylet|[g]cs_server|[d]efault_worker|[d]ashboard' || true"

    def running() -> dict[str, list[str]]:
        return {host: hosts.ssh(host, left).stdout.split("\n")[:-1] for host in HOSTS}

    stopped = time.perf_counter()
    with contextlib.suppress(RuntimeError):
        _wait("every Ray process gone", lambda: not any(running().values()), 150, every=3)
    out.facts["worker_stopped_after_s"] = round(time.perf_counter() - stopped, 1)
    out.facts["ray_processes_left"] = running()
    return out
