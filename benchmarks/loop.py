"""The learning loop end to end: a replayed workload, one turn of the loop in the middle, a
canary that steps the student into its cluster, and the router evaluated as RouteLLM does.

In one run, on one node in process (the real planner, router with all-MiniLM-L6-v2, SmolLM2-135M
answering, tools in their sandbox, ledger, graders; distillation on a local Ray with Ray Train):

  1. before: the first half of a workload (benchmarks/workload.py: definitions and explanations
     with a few hot topics, calculations, unit conversions; train wordings) is answered;
  2. `prsm loop run`'s function: the costliest cluster is distilled into a student from the
     serving model's logged answers and started as a canary;
  3. after: the second half (held-out wordings only) is answered while the canary's decisions
     run after each query (as the scheduled job would); every canary answer is graded against
     the teacher, and a share (PRSM_GRADE_SHARE, 0.3 here) of the promoted student's answers;
  4. router evaluation: every language-model wording answered by the teacher (strong) and the
     student (weak), the student graded against the teacher; half of them (by hash) teach the
     router the student's quality per cluster, the other half is routed at trade-offs 0..1:
     quality against the share of strong calls, APGR, and the cost at 95 % of the strong
     model's quality, beside a random router.

Figures: cost per query of the distilled cluster before and in the last quarter of the replay
(`cost_ratio`: what the user was charged, NWTN's fixed fee per query included), and the same for
the cluster's sub-tasks alone (`model_cost_ratio`: what the models were paid); quality, two ways: (a) `quality_ratio`, the student's answers to the cluster's
held-out wordings graded against a hand-written answer key (workload.REFERENCES) over the
teacher's answers to the same wordings graded the same way (neither model wrote the key, so both
are judged alike); (b) `agreement_ratio`, the scale the canary's gate uses: the student's mean
shadow grade (agreement with the teacher's answer to the same sub-task) over the teacher's own
agreement across the cluster's different wordings (`teacher_consistency`, which prsm/loop.py
measures and the canary's bar is scaled by). Also the share of the cluster the student served,
failed queries, and the APGR figures. A PNG charts cost and quality over the replay with the
loop's decisions and the canary's bar marked.

    python benchmarks/loop.py [--quick]
Writes benchmarks/results/loop.json and benchmarks/results/loop.png.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine  # noqa: E402
from workload import REFERENCES, language_questions, workload  # noqa: E402

from prsm import canary, clusters, loop, quality, stats  # noqa: E402
from prsm.ftns.amounts import FTNS  # noqa: E402
from prsm.ftns.pricing import call_cost  # noqa: E402
from prsm.nwtn.execute import messages_for  # noqa: E402
from prsm.nwtn.route import score_candidates  # noqa: E402
from prsm.registry import DEFAULT_MODEL_ID  # noqa: E402
from prsm.services import Services  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from prsm.types import ModelCall, SubTask  # noqa: E402
from tests.conftest import MODEL_DIR, orchestrator  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TRADEOFFS = [i / 20 for i in range(21)]


def settings_for(folder: Path, max_new_tokens: int) -> Settings:
    # The sub-task cache (issue 16) is off: the workload repeats wordings, and the loop is measured
    # on its own (a cached answer runs no model and is graded for no canary).
    return Settings(data_dir=folder, model_dir=MODEL_DIR, max_new_tokens=max_new_tokens, grade_share=0.3,
                    canary_steps=[0.25, 0.5], canary_step_grades=6, cache_ttl_s=0, _env_file=None)  # fmt: skip


async def replay(nwtn, services, queries, start_index: int, log: list[dict], decisions: list[dict]) -> None:
    s = services.settings
    for i, q in enumerate(queries, start_index):
        started = time.perf_counter()
        try:
            trace = await nwtn.query(q.prompt, "alice")
            status, tasks, charged = trace["status"], trace["tasks"], int(trace["cost"]["charged"])
            session = trace["session_id"]
        except Exception as exc:  # noqa: BLE001 (counted: the target is none)
            status, tasks, charged, session = f"error: {type(exc).__name__}: {exc}"[:300], [], 0, None
        await nwtn.grades_written()
        for d in canary.decide(services.db, services.registry, s.canary_target, tuple(s.canary_steps),
                               s.canary_step_grades):  # fmt: skip
            decisions.append({"index": i, **d})
            print(f"  query {i}: canary {d['action']} (n={d['n']}, mean={d['mean']})", flush=True)
        log.append({"index": i, "session": session, "kind": q.kind, "topic": q.topic, "prompt": q.prompt, "status": status,
                    "charged": charged, "ms": (time.perf_counter() - started) * 1000,
                    "tasks": [{"model": t["model"], "cluster": t["cluster"], "instruction": t["instruction"],
                               "cost": int(t["cost"])} for t in tasks]})  # fmt: skip
        if i % 50 == 0:
            print(f"  query {i}: {status} in {log[-1]['ms']:.0f} ms", flush=True)


def evaluate_router(services, router, student: str, placer) -> dict:
    """RouteLLM's evaluation on the two models: quality against the share of strong calls."""
    teacher = services.registry.get(DEFAULT_MODEL_ID)
    # The rule is evaluated whatever the canary decided (a rolled-back student's card is disabled).
    weak = dataclasses.replace(services.registry.get(student), disabled=False)
    rows = []
    for topic, prompt, held_out in language_questions():
        task = SubTask("t1", prompt, "general")
        call = ModelCall(messages_for(task, prompt), services.settings.max_new_tokens)
        strong_out = asyncio.run(services.models.run(teacher.id, call))
        weak_out = asyncio.run(services.models.run(weak.id, call))
        grade, strong_key, weak_key = router.similarity(
            [
                (weak_out.text, strong_out.text),
                (strong_out.text, REFERENCES[topic]),
                (weak_out.text, REFERENCES[topic]),
            ]
        )  # agreement with the teacher; each model's agreement with the answer key
        (vector,) = router.embedder.embed_many([prompt])
        rows.append({"topic": topic, "prompt": prompt, "held_out": held_out, "grade": grade,
                     "strong_key": strong_key, "weak_key": weak_key, "cluster": placer.place("general", vector),
                     "vector": vector, "strong_cost": call_cost(teacher, strong_out.tokens_in, strong_out.tokens_out),
                     "weak_cost": call_cost(weak, weak_out.tokens_in, weak_out.tokens_out)})  # fmt: skip
    calibration = [r for r in rows if hashlib.sha256(r["prompt"].encode()).digest()[0] % 2 == 0]
    test = [r for r in rows if r not in calibration]
    with services.db.engine.begin() as conn:  # what the router learns: grades of the calibration half
        quality.record(conn, [quality.Grade(g, "general", s, "reference:eval", cluster=r["cluster"])
                              for r in calibration for g, s in ((student, r["grade"]), (teacher.id, 1.0))])  # fmt: skip
    measured = services.registry.measured_quality()
    cards = [teacher, weak]
    vectors = {c.id: router._vectors[c.id] for c in cards}
    q_strong, q_weak = 1.0, sum(r["grade"] for r in test) / len(test)
    cost_strong = sum(r["strong_cost"] for r in test)
    curve = []
    for w in TRADEOFFS:
        strong_calls, total_q, cost = 0, 0.0, 0
        for r in test:
            ranked = score_candidates(SubTask("t1", r["prompt"], "general"), cards, r["vector"], vectors,
                                      quality=measured, route=w, cluster=r["cluster"])  # fmt: skip
            if ranked[0].model_id == teacher.id:
                strong_calls, total_q, cost = strong_calls + 1, total_q + 1.0, cost + r["strong_cost"]
            else:
                total_q, cost = total_q + r["grade"], cost + r["weak_cost"]
        curve.append({"tradeoff": w, "strong_share": strong_calls / len(test), "quality": total_q / len(test),
                      "cost_ratio": cost / cost_strong})  # fmt: skip
    return {"questions": len(rows), "calibration": len(calibration), "test": len(test), "strong_quality": q_strong,
            "weak_quality": round(q_weak, 4), "curve": curve, **apgr(curve, q_strong, q_weak)}, rows  # fmt: skip


def answer_key(answered: list[dict], topics: set[str]) -> dict:
    """The teacher's and the student's answers to the cluster's wordings graded alike against the
    hand-written answer key (workload.REFERENCES): mean agreement of each, and their ratio."""
    out = {}
    for part, rows in (("held_out", [r for r in answered if r["topic"] in topics and r["held_out"]]),
                       ("all", [r for r in answered if r["topic"] in topics])):  # fmt: skip
        teacher = sum(r["strong_key"] for r in rows) / max(len(rows), 1)
        student = sum(r["weak_key"] for r in rows) / max(len(rows), 1)
        out[part] = {"wordings": len(rows), "teacher": round(teacher, 4), "student": round(student, 4),
                     "ratio": round(student / teacher, 4) if teacher else None}  # fmt: skip
    return out


def apgr(curve: list[dict], q_strong: float, q_weak: float) -> dict:
    """Area under the performance-gap-recovered curve over the share of strong calls (0..1), from
    the sweep's points plus the two ends; the random router's is 0.5 by construction."""
    gap = max(q_strong - q_weak, 1e-9)
    points = sorted(
        {(0.0, 0.0), (1.0, 1.0), *((p["strong_share"], (p["quality"] - q_weak) / gap) for p in curve)}
    )
    best: dict[float, float] = {}
    for x, y in points:  # at one share, the best the router reached
        best[x] = max(best.get(x, y), y)
    xs = sorted(best)
    area = sum((xs[i + 1] - xs[i]) * (best[xs[i]] + best[xs[i + 1]]) / 2 for i in range(len(xs) - 1))
    good = [p for p in curve if p["quality"] >= 0.95 * q_strong]
    cost95 = min((p["cost_ratio"] for p in good), default=1.0)
    random_cost95 = (0.95 * q_strong - q_weak) / gap if q_weak < 0.95 * q_strong else 0.0
    return {"apgr": round(area, 4), "random_apgr": 0.5, "apgr_ratio_to_random": round(area / 0.5, 3),
            "cost_at_95pct_quality_ratio": round(cost95, 4),
            "random_strong_share_at_95pct_quality": round(random_cost95, 4)}  # fmt: skip


def chart(
    path: Path,
    log: list[dict],
    cluster: str,
    decisions: list[dict],
    loop_at: int,
    grades: list[tuple],
    bar: float,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [(e["index"], e["charged"] / FTNS) for e in log if in_cluster(e, cluster)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.scatter([i for i, _ in mine], [c for _, c in mine], s=8)
    top.set_ylabel("FTNS per query (cluster)")
    bottom.scatter([i for i, _ in grades], [g for _, g in grades], s=8, color="tab:green")
    bottom.set_ylabel("student's grade vs teacher")
    bottom.axhline(bar, color="tab:gray", linestyle="--", label="canary bar")
    bottom.set_xlabel("query")
    for ax in (top, bottom):
        ax.axvline(loop_at, color="black", linestyle="--", label="loop run")
        for d in decisions:
            ax.axvline(
                d["index"], color="tab:red" if d["action"] == "roll back" else "tab:orange", linestyle=":"
            )
    top.set_title(f"Cluster {cluster}: cost per query and graded quality over the replay")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def in_cluster(entry: dict, cluster: str) -> bool:
    return any(t["cluster"] == cluster for t in entry["tasks"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="160 queries, a short distillation")
    parser.add_argument("--queries", type=int)
    args = parser.parse_args()
    n = args.queries or (160 if args.quick else 1000)
    steps, max_new_tokens = (60, 24) if args.quick else (200, 24)
    half = n // 2
    queries = workload(n, held_out_from=half)
    started = time.perf_counter()
    from prsm.nwtn.embed import Embedder
    from prsm.nwtn.route import Router

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), max_new_tokens)
        with Services.from_settings(settings, upgrade=True) as services:
            services.registry.ensure_defaults()
            services.ledger.open_account("alice")
            services.ledger.mint("alice", 10**24, "bench-funds")
            services.ledger.open_account(settings.operator_account, "operator")
            services.ledger.mint(settings.operator_account, 10**24, "bench-grading")
            embedder = Embedder()
            router = Router(services.registry, embedder, refresh_s=0.0)
            nwtn = orchestrator(services, router, services.models)
            log: list[dict] = []
            decisions: list[dict] = []
            print(f"before: {half} queries", flush=True)
            t0 = time.perf_counter()
            asyncio.run(replay(nwtn, services, queries[:half], 0, log, decisions))
            before_s = time.perf_counter() - t0
            print("loop run", flush=True)
            t0 = time.perf_counter()
            turn = loop.run(services, embedder, stats.since(1), min_size=5, steps=steps, say=print)
            loop_s = time.perf_counter() - t0
            placer = clusters.Placer(clusters.load(services.db, embedder.name))
            for e in log:  # the before half, placed in the clusters the loop saved
                for t in e["tasks"]:
                    if t["model"] == DEFAULT_MODEL_ID:
                        (v,) = embedder.embed_many([t["instruction"]])
                        t["cluster"] = placer.place("general", v)
            print(f"after: {n - half} queries (held-out wordings)", flush=True)
            t0 = time.perf_counter()
            nwtn = orchestrator(services, router, services.models)
            asyncio.run(replay(nwtn, services, queries[half:], half, log, decisions))
            after_s = time.perf_counter() - t0
            cluster, student = turn["cluster"], turn["student"]
            with services.db.engine.connect() as conn:
                rows = conn.execute(quality.GRADES.select().where(quality.GRADES.c.model_id == student,
                                                                  quality.GRADES.c.cluster == cluster)).all()  # fmt: skip
            index_of = {e["session"]: e["index"] for e in log}
            grades = [(index_of[r.session_id], r.score) for r in rows if r.session_id in index_of]
            print("router evaluation", flush=True)
            routing, answered = evaluate_router(services, router, student, placer)

            before = [e for e in log[:half] if in_cluster(e, cluster)]
            tail = [e for e in log[n - n // 4 :] if in_cluster(e, cluster)]
            served = [t for e in tail for t in e["tasks"] if t["cluster"] == cluster]
            student_mean = sum(r.score for r in rows) / len(rows) if rows else 0.0
            consistency = turn["consistency"] or 1.0
            topics = {e["topic"] for e in log if in_cluster(e, cluster)}
            key = answer_key(answered, topics)
            cost_before = sum(e["charged"] for e in before) / max(len(before), 1)
            cost_after = sum(e["charged"] for e in tail) / max(len(tail), 1)

            def model_cost(entries: list[dict]) -> float:  # the cluster's sub-tasks only, no query fee
                return sum(t["cost"] for e in entries for t in e["tasks"] if t["cluster"] == cluster) / max(
                    len(entries), 1
                )

            failed = [e for e in log if e["status"] not in ("completed", "partial")]
            result = {
                "machine": machine(),
                "quick": args.quick,
                "queries": n,
                "max_new_tokens": max_new_tokens,
                "distill_steps": steps,
                "cluster": cluster,
                "cluster_topics": sorted({e["topic"] for e in log if in_cluster(e, cluster)}),
                "teacher": turn["teacher"],
                "student": student,
                "dataset": turn["dataset"],
                "examples": turn["examples"],
                "student_evaluation": {k: turn["evaluation"].get(k) for k in ("top1_agreement", "kl", "parameter_ratio")},
                "decisions": decisions,
                "cluster_queries_before": len(before),
                "cluster_queries_last_quarter": len(tail),
                "cost_per_query_before_ftns": cost_before / FTNS,
                "cost_per_query_after_ftns": cost_after / FTNS,
                "cost_ratio": round(cost_after / cost_before, 4) if cost_before else None,
                "query_fee_ftns": settings.query_fee / FTNS,
                "model_cost_per_query_before_ftns": model_cost(before) / FTNS,
                "model_cost_per_query_after_ftns": model_cost(tail) / FTNS,
                "model_cost_ratio": round(model_cost(tail) / model_cost(before), 4) if model_cost(before) else None,
                "student_share_last_quarter": round(sum(t["model"] == student for t in served) / max(len(served), 1), 4),
                "student_grades": len(rows),
                "student_agreement": round(student_mean, 4),
                "teacher_consistency": round(consistency, 4),
                "agreement_ratio": round(student_mean / consistency, 4),
                "answer_key": key,
                "quality_ratio": key["held_out"]["ratio"],
                "failed_queries": len(failed),
                "failures": [e["status"] for e in failed][:5],
                "seconds": {"before": round(before_s, 1), "loop": round(loop_s, 1), "after": round(after_s, 1),
                            "total": round(time.perf_counter() - started, 1)},
                "routing": routing,
            }  # fmt: skip
            chart(RESULTS / "loop.png", log, cluster, decisions, half, grades, 0.95 * consistency)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loop.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    r = result
    print(
        f"\ncluster {r['cluster']} {r['cluster_topics']}: cost/query {r['cost_per_query_before_ftns']:.6f} -> "
        f"{r['cost_per_query_after_ftns']:.6f} FTNS, cost_ratio {r['cost_ratio']} (target <= 0.5; each "
        f"query also pays NWTN's fee of {r['query_fee_ftns']} FTNS); the cluster's sub-tasks alone: "
        f"model_cost_ratio {r['model_cost_ratio']}; student "
        f"served {r['student_share_last_quarter']:.0%} of the cluster in the last quarter; quality_ratio "
        f"{r['quality_ratio']} (answer key, held-out wordings; target >= 0.95); agreement_ratio "
        f"{r['agreement_ratio']} ({r['student_agreement']} over {r['student_grades']} grades / teacher "
        f"consistency {r['teacher_consistency']}); failed {r['failed_queries']}"
    )
    g = r["routing"]
    print(f"router: APGR {g['apgr']} (random 0.5), cost at 95% of the strong model's quality "
          f"{g['cost_at_95pct_quality_ratio']} of all-strong; weak quality {g['weak_quality']}")  # fmt: skip


if __name__ == "__main__":
    main()
