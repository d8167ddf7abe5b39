"""Operations, live: a real Prometheus (Debian's package) scrapes the running app through the
repository's own config, and PRSM's series come back through Prometheus's HTTP API after real
queries; the dashboard's metric names are all in that scrape; a query's request id is in the
JSON log line of every hop it took."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from prsm.cli import monitor
from tests.services import free_port
from tests.unit.test_monitoring import PROMQL_NAME, dashboard_queries, promtool


@pytest.fixture(scope="module")
def prometheus(prsm_app, tmp_path_factory):
    """`prsm up --monitor`'s Prometheus (the same config, rules and command), on a free port."""
    promtool()  # skipped, or failed under .ci/run, where Debian's prometheus package is missing
    folder = tmp_path_factory.mktemp("prometheus")
    config = monitor.prepare(folder, [f"127.0.0.1:{prsm_app.metrics_port}"])
    port = free_port()
    with open(folder / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            monitor.command(config, folder / "data", port), stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        monitor.wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def promql(url: str, query: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for(url: str, query: str, at_least: float, timeout_s: float = 120) -> float:
    """The query's (single) value once it reaches `at_least`: Ray exports every few seconds and
    Prometheus scrapes every 5 s."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        result = promql(url, query)
        value = float(result[0]["value"][1]) if result else None
        if value is not None and value >= at_least:
            return value
        time.sleep(1)
    raise AssertionError(f"{query} was {value} after {timeout_s:.0f} s, expected >= {at_least}")


def test_prometheus_reads_prsms_series_after_real_queries(prsm_app, prometheus):
    with (
        prsm_app.client("erin") as erin,
        prsm_app.client("frank") as frank,
        prsm_app.client("alice") as alice,
    ):
        for i in range(3):
            answered = erin.post("/v1/query", json={"prompt": f"Convert {i + 5} km to miles"})
            assert answered.status_code == 200, answered.text
        # A language model's sub-task: tokens in and out, FTNS earned by its model.
        explained = erin.post("/v1/query", json={"prompt": "In one sentence, what is entropy?"})
        assert explained.status_code == 200, explained.text
        lm = explained.json()["tasks"][0]["model"]
        assert frank.post("/v1/query", json={"prompt": "Convert 1 km to miles"}).status_code == 402
        assert httpx.post(f"{prsm_app.base_url}/v1/query", json={"prompt": "x"}).status_code == 401
        cid = alice.post("/v1/artifacts", params={"kind": "dataset"}, content=b"metrics test bytes").json()[
            "cid"
        ]
        assert alice.get(f"/v1/artifacts/{cid}/content").content == b"metrics test bytes"

    assert wait_for(prometheus, 'sum(ray_prsm_queries_total{status="completed"})', 3) >= 3
    assert wait_for(prometheus, 'sum(ray_prsm_refusals_total{status="402"})', 1) >= 1
    assert wait_for(prometheus, 'sum(ray_prsm_refusals_total{status="401"})', 1) >= 1
    units = 'sum(ray_prsm_subtask_seconds_count{model="pint-units",capability="units",outcome="ok"})'
    assert wait_for(prometheus, units, 3) >= 3
    assert wait_for(prometheus, 'sum(ray_prsm_commit_batch_writes_count{writer="sessions"})', 1) >= 1
    assert wait_for(prometheus, 'sum(ray_prsm_store_bytes_in_total{backend="local"})', 18) >= 18
    assert wait_for(prometheus, 'sum(ray_prsm_store_bytes_out_total{backend="local"})', 18) >= 18
    assert wait_for(prometheus, "sum(ray_serve_num_http_requests_total)", 5) >= 5
    assert wait_for(prometheus, f'sum(ray_prsm_tokens_out_total{{model="{lm}"}})', 1) >= 1
    assert wait_for(prometheus, f'sum(ray_prsm_ftns_earned_total{{model="{lm}"}})', 1e-18) > 0
    assert wait_for(prometheus, 'sum(ray_prsm_ftns_charged_total{kind="query"})', 1e-18) > 0
    # Gauges from NWTN's health check: no breaker open, nothing earned waits for settlement.
    assert wait_for(prometheus, "count(ray_prsm_open_circuits)", 1) >= 1
    assert wait_for(prometheus, "count(ray_prsm_settlement_lag_seconds)", 1) >= 1
    # The scheduled sweep (every 5 s in this app) ran in one NWTN replica, counted by outcome.
    assert wait_for(prometheus, 'sum(ray_prsm_schedule_runs_total{schedule="sweep",outcome="ok"})', 1) >= 1
    assert (
        wait_for(prometheus, 'max(ray_prsm_schedule_last_success_timestamp_seconds{schedule="sweep"})', 1) > 0
    )
    # The query-time quantiles the alert rule watches are computable from what was scraped (the
    # rule takes a rate over 5 minutes; a fresh series has a sample or two, so the totals here).
    p99 = promql(prometheus, "histogram_quantile(0.99, sum by (le) (ray_prsm_query_seconds_bucket))")
    assert p99 and 0 < float(p99[0]["value"][1]) <= 120

    # Labels stay bounded: no series of PRSM's carries an account, key or session.
    series = httpx.get(f"{prometheus}/api/v1/series", params={"match[]": '{__name__=~"ray_prsm_.*"}'}).json()[
        "data"
    ]
    assert series
    labels = {key for s in series for key in s}
    assert not labels & {"account", "user", "key_id", "session_id", "request_id", "prompt"}
    values = {value for s in series for value in s.values()}
    assert not values & {"erin", "frank", "alice", *prsm_app.keys.values()}

    # The dashboard's queries name only series this scrape has.
    names = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values").json()["data"])
    for expr in dashboard_queries():
        for name in PROMQL_NAME.findall(expr):
            assert name in names, f"the dashboard's {name} is not in the live scrape"

    # The alert rules are loaded and evaluated by the running Prometheus.
    rules = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {"PRSMQueryErrorRate", "PRSMSettlementLag"}
    assert all(r["health"] in ("ok", "unknown") for g in rules for r in g["rules"])


def ray_log_lines(containing: str) -> list[dict]:
    """PRSM's JSON lines with `containing` in them, from every Ray worker's stderr on this node."""
    import ray._private.worker

    found = []
    for path in Path(ray._private.worker._global_node.get_logs_dir_path()).glob("worker-*.err"):
        for line in path.read_text(errors="replace").splitlines():
            if containing in line and line.startswith("{"):
                found.append(json.loads(line))
    return found


def test_a_querys_request_id_is_in_the_log_line_of_every_hop(prsm_app):
    request_id = f"it-{uuid.uuid4().hex}"
    with prsm_app.client("erin") as erin:
        response = erin.post(
            "/v1/query", json={"prompt": "Convert 3 km to miles"}, headers={"x-request-id": request_id}
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == request_id
        session_id = response.json()["session_id"]
    from prsm.services import Services

    with Services.from_settings(prsm_app.settings) as services:
        key_id = services.keys.authenticate(prsm_app.keys["erin"]).key_id

    deadline = time.monotonic() + 30
    while True:
        lines = ray_log_lines(request_id)
        by_component = {line["component"]: line for line in lines}
        if {"NWTN", "Router", "ToolReplica"} <= set(by_component) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {"NWTN", "Router", "ToolReplica"} <= set(by_component), lines
    query = by_component["NWTN"]
    assert query["message"] == "query" and query["status"] == "completed"
    assert query["session_id"] == session_id and query["key_id"] == key_id
    assert query["model_id"] == "pint-units"
    assert by_component["Router"]["model_id"] == "pint-units"
    call = by_component["ToolReplica"]
    assert call["message"] == "model call" and call["model_id"] == "pint-units" and call["status"] == "ok"
    # Never the key itself, nor the prompt.
    for line in lines:
        text = json.dumps(line)
        assert prsm_app.keys["erin"] not in text and "Convert 3 km" not in text


def test_a_distillation_job_that_does_not_fit_beside_the_app_stops_at_once(prsm_app):
    """On the app's own Ray: the default fits in what the replicas leave free; more is refused
    in seconds, naming what is free, instead of waiting forever for a worker."""
    import ray

    from prsm.distill.job import placement
    from prsm.distill.spec import DistillSpec
    from prsm.errors import ClusterTooSmall

    total = ray.cluster_resources()["CPU"]
    started = time.monotonic()
    cpus = placement(DistillSpec(teacher="smollm2-135m-instruct"), prsm_app.settings)
    assert 0 < cpus < total  # the app's replicas hold part of the CPUs
    with pytest.raises(ClusterTooSmall, match=f"of {total:g} CPU free"):
        placement(DistillSpec(teacher="smollm2-135m-instruct", cpus_per_worker=total), prsm_app.settings)
    assert time.monotonic() - started < 10
