"""A PRSM node in a process of its own, for tests/integration/test_federation.py: its own local Ray,
Serve app, database and block store, configured by PRSM_* environment variables as `prsm up` is.

    python -m tests.federation_node

It answers `ok` on stdout once the app is healthy, then reads commands on stdin: `stop` shuts the
Serve app down (the node is gone: its port refuses connections), `start` deploys it again, `quit`
(or the end of stdin) shuts everything down. Each command is answered `ok` once done.
"""

from __future__ import annotations

import sys


def main() -> None:
    from prsm.settings import Settings, apply_ray_env

    apply_ray_env()
    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.cli.stack import wait_healthy

    settings = Settings()

    def start() -> None:
        serve.start(http_options={"host": "127.0.0.1", "port": settings.port})
        serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
        wait_healthy(settings.base_url, 180)

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        start()
        print("ok", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stop":
                serve.shutdown()
            elif command == "start":
                start()
            elif command == "quit":
                break
            print("ok", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
