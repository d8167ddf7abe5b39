"""PRSM's own metrics, exported by Ray beside Serve's.

Each metric here is a `ray.util.metrics` Counter, Histogram or Gauge, created the first time it
is recorded in a process where Ray runs (a Serve replica, a Ray task, a driver after
`ray.init`). Ray's metrics agent on each node serves them in Prometheus format on the node's
metrics export port, named `ray_<name>` (a counter also as `ray_<name>_total`), beside Serve's
`ray_serve_*` series. In a process without Ray (the CLI, the unit tests) there is nothing to
export them, and recording is a dictionary lookup and nothing else: this module does not import
Ray, so the domain core stays light to import.

Labels stay bounded: statuses, model ids, capabilities, roles and kinds, never account ids, key
ids, session ids or prompts (`Metric` refuses a label value longer than `MAX_LABEL_CHARS`).
`CATALOGUE` lists every metric with its labels; monitoring/ (the Prometheus alert rules and the
Grafana dashboard) use only these names and Serve's, which a test checks against a live scrape.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

MAX_LABEL_CHARS = 160  # a model id's length bound (prsm/types.py); anything longer is cut


@dataclass
class Metric:
    kind: str  # "counter" | "histogram" | "gauge"
    name: str
    description: str
    labels: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    _ray: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _metric(self):
        """The Ray metric, made on first use in a process where Ray is initialized; else None."""
        if self._ray is not None:
            return self._ray
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return None
        from ray.util import metrics

        with self._lock:
            if self._ray is None:
                if self.kind == "counter":
                    self._ray = metrics.Counter(self.name, self.description, self.labels)
                elif self.kind == "gauge":
                    self._ray = metrics.Gauge(self.name, self.description, self.labels)
                else:
                    self._ray = metrics.Histogram(
                        self.name, self.description, list(self.boundaries), self.labels
                    )
        return self._ray

    def _tags(self, labels: dict[str, object]) -> dict[str, str]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes the labels {self.labels}, not {tuple(labels)}")
        return {k: str(v)[:MAX_LABEL_CHARS] for k, v in labels.items()}

    def inc(self, value: float = 1.0, **labels: object) -> None:
        if value <= 0:  # a counter only goes up; nothing to add is nothing recorded
            return
        metric = self._metric()
        if metric is not None:
            metric.inc(value, self._tags(labels))

    def observe(self, value: float, **labels: object) -> None:
        metric = self._metric()
        if metric is not None:
            metric.observe(value, self._tags(labels))

    def set(self, value: float, **labels: object) -> None:
        metric = self._metric()
        if metric is not None:
            metric.set(value, self._tags(labels))


def counter(name: str, description: str, *labels: str) -> Metric:
    return _add(Metric("counter", name, description, labels))


def histogram(name: str, description: str, boundaries: tuple[float, ...], *labels: str) -> Metric:
    return _add(Metric("histogram", name, description, labels, boundaries))


def gauge(name: str, description: str, *labels: str) -> Metric:
    return _add(Metric("gauge", name, description, labels))


CATALOGUE: dict[str, Metric] = {}


def _add(metric: Metric) -> Metric:
    CATALOGUE[metric.name] = metric
    return metric


# Seconds: from a tool's few milliseconds to a language model's minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

QUERIES = counter("prsm_queries", "Queries answered by NWTN, by final status.", "status")
QUERY_SECONDS = histogram(
    "prsm_query_seconds",
    "Wall time of a query inside NWTN, plan to compiled answer.",
    LATENCY_BUCKETS,
    "status",
)
SUBTASK_SECONDS = histogram(
    "prsm_subtask_seconds",
    "Latency of one sub-task's model call, by the model that answered (or failed) and capability.",
    LATENCY_BUCKETS,
    "model",
    "capability",
    "outcome",
)
TOKENS_IN = counter("prsm_tokens_in", "Prompt tokens of answered model calls.", "model")
TOKENS_OUT = counter("prsm_tokens_out", "Generated tokens of answered model calls.", "model")
FTNS_CHARGED = counter(
    "prsm_ftns_charged",
    "FTNS charged to users (whole tokens; the ledger holds the exact base units).",
    "kind",
)
FTNS_EARNED = counter(
    "prsm_ftns_earned", "FTNS earned by model owners for their models' calls (whole tokens).", "model"
)
REFUSALS = counter(
    "prsm_refusals",
    "Requests refused: 401 (no valid key), 402 (no funds), 429 (over a limit), 503 (overloaded).",
    "status",
)
COMMIT_SECONDS = histogram(
    "prsm_commit_seconds",
    "One group-commit transaction of the ledger and session writer.",
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    "writer",
)
COMMIT_BATCH = histogram(
    "prsm_commit_batch_writes",
    "Writes folded into one group commit.",
    (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "writer",
)
FALLBACKS = counter(
    "prsm_router_fallbacks", "Sub-tasks handed to the next candidate after a model failed.", "capability"
)
OPEN_CIRCUITS = gauge(
    "prsm_open_circuits", "Models whose circuit breaker is open, per NWTN replica (Ray labels each process)."
)
TOOL_OVERRUNS = counter(
    "prsm_tool_overruns", "Tool calls stopped in the sandbox: past CPU time, wall clock or memory.", "limit"
)
STORE_BYTES_IN = counter("prsm_store_bytes_in", "Bytes written to the content-addressed store.", "backend")
STORE_BYTES_OUT = counter("prsm_store_bytes_out", "Bytes read from the content-addressed store.", "backend")
STORE_QUARANTINED = counter(
    "prsm_store_quarantined", "Blocks that failed verification and were quarantined.", "backend"
)
HOLDS_SWEPT = counter("prsm_holds_swept", "Abandoned holds released by the scheduled sweep.")
SETTLEMENT_EPOCHS = counter("prsm_settlement_epochs", "Settlement epochs, by outcome.", "outcome")
SETTLEMENT_LAG = gauge(
    "prsm_settlement_lag_seconds",
    "Age of the oldest ledger entry not yet settled on chain, when last measured.",
)
SCHEDULE_RUNS = counter(
    "prsm_schedule_runs",
    "Runs of the scheduled jobs (sweep, settle, gc, canary, federation), by outcome.",
    "schedule",
    "outcome",
)
SCHEDULE_LAST_OK = gauge(
    "prsm_schedule_last_success_timestamp_seconds",
    "Unix time of a scheduled job's last run that did not fail, in the process that ran it.",
    "schedule",
)
SUBTASK_CACHE = counter(
    "prsm_subtask_cache",
    "Lookups of the sub-task cache by outcome (hit, miss): the hit rate is hits / all.",
    "outcome",
)
GRADES = counter(
    "prsm_grades",
    "Grades of answers by grader (tool, reference) and outcome (graded, unfunded, busy, failed).",
    "grader",
    "outcome",
)
