"""`prsm stats` (issue 14 §3): DuckDB reads the sessions, sub-tasks, grades and ledger in place,
and its figures are the records' own; distillation candidates cluster what language models
served, the costliest first."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from prsm import stats
from prsm.cli import main
from prsm.db.models import PlanTask, QuerySession
from prsm.errors import InvalidInput
from prsm.registry import DEFAULT_MODEL_ID

PROMPTS = [
    "In one sentence, what is entropy?",
    "In one sentence, what is entropy in physics?",
    "Briefly, what is a catalyst?",
    "Integrate x^2 from 0 to 3",
    "Convert 5 km to miles",
]


@pytest.fixture
def traffic(services, nwtn):
    traces = [asyncio.run(nwtn.query(p, "alice")) for p in PROMPTS]
    first = traces[0]
    services.sessions.rate(first["session_id"], first["tasks"][0]["key"], 0.5, None)
    return traces


def test_the_summary_is_the_records_own_figures(services, traffic):
    con = stats.connect(services.settings)
    start = stats.since(1)
    rows = {(r["capability"], r["model"]): r for r in stats.subtasks(con, start, ["capability", "model"])}
    with services.db.orm() as s:
        tasks = s.scalars(select(PlanTask).where(PlanTask.status == "done")).all()
        charged = sum(x.charged for x in s.scalars(select(QuerySession)).all())
    for key in {(t.capability, t.assigned_model) for t in tasks}:
        mine = [t for t in tasks if (t.capability, t.assigned_model) == key]
        assert rows[key]["subtasks"] == len(mine)
        assert int(rows[key]["cost"]["base_units"]) == sum(t.cost for t in mine)  # exact, in base units
    general = rows[("general", DEFAULT_MODEL_ID)]
    assert general["grades"] == 1 and general["quality"] == pytest.approx(0.5)
    assert rows[("math", "sympy-cas")]["quality"] == 1.0  # the tool's success, graded
    assert general["p50_ms"] <= general["p95_ms"]

    (day,) = stats.queries(con, start)
    assert day["queries"] == day["answered"] == len(PROMPTS)
    assert int(day["charged"]["base_units"]) == charged
    assert day["day"] == datetime.now(UTC).date().isoformat()

    earned = {r["account"]: int(r["earned"]["base_units"]) for r in stats.earnings(con, start)}
    assert "alice" not in earned  # the unused part of a hold returned to its payer is no earning
    assert sum(earned.values()) == charged  # every charged unit was paid to someone
    assert earned["prsm-foundation"] > 0 and earned["local-operator"] > 0 and earned["ftns:treasury"] > 0

    by_day = stats.subtasks(con, start, ["day"])
    assert [r["subtasks"] for r in by_day] == [len(tasks)]
    assert stats.subtasks(con, datetime.now(UTC) + timedelta(hours=1), ["model"]) == []


def test_bad_options_are_refused_naming_them():
    for bad in ("", "week", "day,day", "model,owner"):
        with pytest.raises(InvalidInput) as info:
            stats.dimensions(bad)
        assert info.value.field == "by"
    assert stats.dimensions("model, day") == ["model", "day"]
    for bad in (0, -1, 10**6):
        with pytest.raises(InvalidInput):
            stats.since(bad)


def test_candidates_cluster_language_model_sub_tasks_costliest_first(services, traffic, embedder):
    con = stats.connect(services.settings)
    found = stats.candidates(con, embedder, stats.since(1), threshold=0.5)
    assert all(set(c["models"]) == {DEFAULT_MODEL_ID} for c in found)  # tools are not candidates
    assert sum(c["volume"] for c in found) == 3
    top = found[0]
    assert top["volume"] == 2 and all("entropy" in e for e in top["examples"])
    assert int(top["cost"]["base_units"]) >= int(found[-1]["cost"]["base_units"])
    assert int(top["mean_cost"]["base_units"]) == int(top["cost"]["base_units"]) // 2
    # one cluster per instruction when nothing is similar enough
    assert len(stats.candidates(con, embedder, stats.since(1), threshold=1.0)) == 3


def test_cli_stats_prints_tables_and_json_and_refuses_bad_options(services, traffic, monkeypatch, capsys):
    monkeypatch.setenv("PRSM_DATA_DIR", str(services.settings.data_dir))
    assert main(["stats", "--json", "--by", "model"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in found["subtasks"]} == {DEFAULT_MODEL_ID, "sympy-cas", "pint-units"}
    assert main(["stats", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "Answered sub-tasks" in out and "Queries by day" in out and "prsm-foundation" in out
    assert main(["stats", "--by", "owner"]) == 1
    assert "--by" in capsys.readouterr().err


def test_saved_clusters_place_new_sub_tasks_and_quality_is_kept_per_cluster(
    services, models, traffic, embedder
):
    from prsm import clusters, quality
    from prsm.loop import save_clusters as save

    def save_clusters(*args, **kwargs):
        return [c.view() | {"cluster": s.id} for c, s in save(*args, **kwargs)]

    from prsm.nwtn.route import Router
    from tests.conftest import orchestrator

    saved = save_clusters(services, embedder, stats.since(1), 5000, min_size=2)
    assert [c["volume"] for c in saved] == [2]  # the two entropy questions; the catalyst alone is left out
    (entropy,) = clusters.load(services.db, embedder.name)
    assert entropy.capability == "general" and "entropy" in entropy.example
    assert (
        save_clusters(services, embedder, stats.since(1), 5000, min_size=2)[0]["cluster"] == entropy.id
    )  # kept

    router = Router(services.registry, embedder)  # a fresh router reads the saved clusters
    router.cluster_threshold = 0.6  # the bag-of-words stand-in is stricter than MiniLM
    nwtn = orchestrator(services, router, models)
    trace = asyncio.run(nwtn.query("In one sentence, what is entropy in chemistry?", "alice"))
    (task,) = trace["tasks"]
    assert task["cluster"] == entropy.id and task["ranking"][0]["cluster"] == entropy.id
    other = asyncio.run(nwtn.query("Briefly, what is a catalyst?", "alice"))
    assert other["tasks"][0]["cluster"] is None

    services.sessions.rate(trace["session_id"], task["key"], 1.0, None)
    found = services.registry.measured_quality()[DEFAULT_MODEL_ID]
    assert found[("general", entropy.id)].n == 1 and found[("general", "")].n == 2  # the fixture's 0.5 too
    est = quality.estimate_for(found, "general", entropy.id)
    assert (
        est.prior_mean == pytest.approx(found[("general", "")].mean)
        and est.mean > found[("general", "")].mean
    )

    con = stats.connect(services.settings)
    rows = {r["cluster"]: r["subtasks"] for r in stats.subtasks(con, stats.since(1), ["cluster"])}
    assert rows[entropy.id] == 1
