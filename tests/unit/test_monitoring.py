"""Metrics, alert rules, the dashboard and the JSON logs, without Ray (the live scrape through a
real Prometheus is tests/integration/test_monitoring.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from prsm import logs, metrics
from prsm.cli import monitor

MONITORING = monitor.MONITORING_DIR
PROMQL_NAME = re.compile(r"\b(ray_[a-z0-9_]+)\b")
# Labels that would make a series per person or per request: never on PRSM's metrics.
UNBOUNDED = {
    "account",
    "account_id",
    "user",
    "key",
    "key_id",
    "session",
    "session_id",
    "prompt",
    "request_id",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("PRSM_REQUIRE_OPS_TOOLS"):  # .ci/run installs it: its absence is a failure
            pytest.fail("promtool is not installed (Debian's prometheus package)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def exported_names() -> set[str]:
    """The series names Ray exports for PRSM's catalogue."""
    names = set()
    for m in metrics.CATALOGUE.values():
        base = f"ray_{m.name}"
        if m.kind == "counter":
            names |= {base, f"{base}_total"}
        elif m.kind == "histogram":
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        else:
            names.add(base)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "prsm.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_alert_rules_pass_promtool():
    result = subprocess.run(
        [promtool(), "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_the_prepared_prometheus_config_passes_promtool(tmp_path):
    config = monitor.prepare(tmp_path, ["127.0.0.1:8080"])
    result = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "targets.json").read_text()) == [
        {"targets": ["127.0.0.1:8080"], "labels": {}}
    ]


def test_alerts_and_dashboard_name_only_prsm_metrics_or_serve_series():
    known = exported_names()
    for expr in alert_queries() + dashboard_queries():
        for name in PROMQL_NAME.findall(expr):
            assert name in known or name.startswith("ray_serve_"), (
                f"{name} in {expr!r} is no metric of PRSM's"
            )
    # Every alert the issue asks for is there.
    alerts = " ".join(alert_queries())
    for name in (
        "queries_total",
        "query_seconds_bucket",
        "holds_swept",
        "settlement_lag",
        "store_quarantined",
        "schedule_runs",
    ):
        assert f"ray_prsm_{name}" in alerts


def test_metric_names_and_labels_are_valid_and_bounded():
    assert len(metrics.CATALOGUE) >= 15
    for m in metrics.CATALOGUE.values():
        assert re.fullmatch(r"prsm_[a-z0-9_]+", m.name), m.name
        assert m.description.strip(), m.name
        assert not set(m.labels) & UNBOUNDED, f"{m.name} has an unbounded label"
        # Prometheus's own target labels: a metric's `job` would be renamed `exported_job`
        assert not set(m.labels) & {"job", "instance"}, f"{m.name} has a label Prometheus renames"
        if m.kind == "histogram":
            assert list(m.boundaries) == sorted(set(m.boundaries)) and m.boundaries, m.name


def test_recording_without_ray_is_a_no_op_and_imports_no_ray():
    code = (
        "import sys; from prsm import metrics; metrics.QUERIES.inc(status='completed'); "
        "metrics.SUBTASK_SECONDS.observe(0.1, model='m', capability='math', outcome='ok'); "
        "print('ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_metric_refuses_labels_it_does_not_declare():
    m = metrics.Metric("counter", "prsm_test_labels", "test", ("status",))
    with pytest.raises(ValueError, match="status"):
        m._tags({"account": "alice"})
    assert m._tags({"status": "x" * 500}) == {"status": "x" * metrics.MAX_LABEL_CHARS}


@pytest.fixture
def captured():
    stream = io.StringIO()
    logger = logs.configure("NWTN")
    handler = next(h for h in logger.handlers if isinstance(h.formatter, logs.JsonLines))
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_the_request_id_of_the_context(captured):
    token = logs.REQUEST_ID.set("req-1")
    try:
        logs.event("query", session_id="s-1", key_id="k1", status="completed", ms=1.5, model_id=None)
    finally:
        logs.REQUEST_ID.reset(token)
    logs.event("ranked", request_id="req-2", level=logging.INFO)
    first, second = lines(captured)
    assert first["message"] == "query" and first["component"] == "NWTN" and first["level"] == "INFO"
    assert first["request_id"] == "req-1" and first["session_id"] == "s-1" and first["key_id"] == "k1"
    assert "model_id" not in first  # None fields are left out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["request_id"] == "req-2"


def test_a_crafted_request_id_cannot_forge_or_break_a_log_line(captured):
    crafted = 'abc"}\n{"level": "ERROR", "message": "forged' + "x" * 500
    logs.event("query", request_id=logs.clean_request_id(crafted))
    (line,) = lines(captured)
    assert line["request_id"] == "abclevel:ERRORmessage:forged" + "x" * 36
    assert len(line["request_id"]) == logs.MAX_ID_CHARS
    assert (
        logs.clean_request_id("0b6c2f5e-12ab-4c5d-9e0f-1234567890ab")
        == "0b6c2f5e-12ab-4c5d-9e0f-1234567890ab"
    )


def test_levels_below_the_setting_are_not_written(captured):
    logs.configure("NWTN", "WARNING")
    try:
        logs.event("model call", status="ok")
        logs.event("abandoned holds released", logging.WARNING, sessions=2)
    finally:
        logs.configure("NWTN", "INFO")
    assert [line["message"] for line in lines(captured)] == ["abandoned holds released"]


def test_the_operations_guide_lists_every_metric():
    guide = (MONITORING.parent / "docs" / "operations.md").read_text()
    for m in metrics.CATALOGUE.values():
        assert f"`ray_{m.name}" in guide, f"docs/operations.md does not list {m.name}"


def test_prsm_up_monitor_starts_prometheus_and_down_stops_only_it(tmp_path):
    promtool()  # the same package brings prometheus
    from prsm.settings import Settings
    from tests.services import free_port

    settings = Settings(data_dir=tmp_path, prometheus_port=free_port(), _env_file=None)
    url = monitor.start(settings, ["127.0.0.1:1"])
    assert url.endswith(f":{settings.prometheus_port}")
    pid = int((tmp_path / "prometheus" / monitor.PID_FILE).read_text())
    assert monitor.stop(settings) is True and not os.path.exists(f"/proc/{pid}/cmdline")
    assert monitor.stop(settings) is False  # nothing left to stop
    (tmp_path / "prometheus" / monitor.PID_FILE).write_text(f"{os.getpid()}\n")  # a reused pid
    assert monitor.stop(settings) is False  # not a Prometheus: left alone (this test is alive)
