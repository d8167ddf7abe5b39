"""Ray job: get a cluster ready to serve PRSM. Upgrades the database, registers the shipped
model cards, and converts the packaged default model on every alive node (each node loads
weights from its own disk).

    ray job submit --working-dir . -- python jobs/prepare_models.py
    python jobs/prepare_models.py            # same, on a local Ray
"""

from __future__ import annotations

import os
import socket

import ray

from prsm.backends.causal_lm import resolve_weights
from prsm.db.engine import make_engine, session_factory, upgrade
from prsm.registry import DEFAULT_WEIGHTS, Registry
from prsm.settings import Settings


@ray.remote(num_cpus=1)
def convert_on_node(weights: str, model_dir: str) -> str:
    folder = resolve_weights(weights, Settings(model_dir=model_dir).resolved_model_dir)
    return f"{socket.gethostname()}: {folder}"


def main() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    settings = Settings()
    upgrade(settings.resolved_database_url)
    Registry(session_factory(make_engine(settings.resolved_database_url))).ensure_defaults()
    print("database upgraded; shipped model cards registered", flush=True)

    ray.init(address=os.environ.get("RAY_ADDRESS", settings.ray_address))
    nodes = [n for n in ray.nodes() if n["Alive"]]
    pending = [
        convert_on_node.options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False
            )
        ).remote(DEFAULT_WEIGHTS, str(settings.resolved_model_dir))
        for n in nodes
    ]
    for line in ray.get(pending):
        print(f"default model ready on {line}", flush=True)


if __name__ == "__main__":
    main()
