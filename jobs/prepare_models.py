"""Ray job: get a cluster ready to serve PRSM. Upgrades the database, registers the shipped
model cards, and makes the default model loadable on every alive node: the first node converts
the packaged model and stores it by CID (the card points at ipfs://<CID> from then on); every
node then fetches it by CID into its own model cache (from IPFS when PRSM_IPFS_URL is set; with
node-local stores each node imports the same bytes and checks they give the card's CID).

    ray job submit --working-dir . -- python jobs/prepare_models.py
    python jobs/prepare_models.py            # same, on a local Ray
"""

from __future__ import annotations

import os
import socket

import ray

from prsm.services import Services
from prsm.settings import apply_ray_env


@ray.remote(num_cpus=1)
def prepare_on_node(settings: dict) -> str:
    with Services.from_settings(settings) as services:
        weights, folder = services.prepare_default_model()
    return f"{socket.gethostname()}: {weights} in {folder}"


def main() -> None:
    apply_ray_env()
    with Services.from_settings(upgrade=True) as services:
        settings = services.settings
        weights, _ = services.prepare_default_model()  # here first: one conversion, one CID for every node
    print(f"database upgraded; default model weights {weights}", flush=True)

    ray.init(address=os.environ.get("RAY_ADDRESS", settings.ray_address))
    nodes = [n for n in ray.nodes() if n["Alive"]]
    pending = [
        prepare_on_node.options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False
            )
        ).remote(settings.portable())
        for n in nodes
    ]
    for line in ray.get(pending):
        print(f"default model ready on {line}", flush=True)


if __name__ == "__main__":
    main()
