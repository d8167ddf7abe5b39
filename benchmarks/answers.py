"""How exact PRSM's answers are, over HTTP, on the project's science question set.

Each question of benchmarks/science_questions.py (written from references, not from PRSM's
output) goes to `POST /v1/query` of a running app; the trace is scored:
  - exact: every numeric or symbolic part has the expected value, computed by an exact tool
    (share of questions, and of parts);
  - plan: node and edge F1 of the sub-tasks' capabilities and dependencies against the expected
    plan, as TaskBench scores tool graphs (multisets of nodes, and of (from, to) capability edges);
  - numbers from a general model: sub-tasks a tool applies to that a language model answered
    with a number (target: none), and all numbers the answers carry from language models.

    python benchmarks/answers.py [--quick] [--url http://127.0.0.1:8000 --key prsm_...]
Without --url it starts the embedded app on a local Ray (the default model loaded, a funded key),
as `prsm up` would. Writes benchmarks/results/answers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine  # noqa: E402  (benchmarks/machine.py)
from science_questions import QUESTIONS, Question  # noqa: E402

from prsm.nwtn.execute import value_of  # noqa: E402
from prsm.settings import apply_ray_env  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "answers.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
EXACT_CAPABILITIES = {"math", "units", "formula"}
TARGETS = {"exact_share": 0.95, "plan_node_f1": 0.9, "general_model_numbers_where_a_tool_applies": 0}
_NUMBER = re.compile(
    r"^\s*(?P<n>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)(?:\s*/\s*(?P<d>\d+))?(?![\w*(])", re.I
)


def f1(predicted: Counter, gold: Counter) -> float:
    if not predicted and not gold:
        return 1.0
    hit = sum((predicted & gold).values())
    precision = hit / max(sum(predicted.values()), 1)
    recall = hit / max(sum(gold.values()), 1)
    return 0.0 if hit == 0 else 2 * precision * recall / (precision + recall)


def same_expression(got: str, expected: str) -> bool:
    """Symbolic answers: solution sets compared as sets, expressions by SymPy (PRSM's own
    whitelisting parser reads both: nothing here is eval'd)."""
    import sympy

    from prsm.backends.math_tool import parse

    if "=" in expected:
        norm = lambda s: sorted(p.replace(" ", "") for p in s.split(","))  # noqa: E731
        return norm(got) == norm(expected)
    try:
        return sympy.simplify(parse(got) - parse(expected)) == 0
    except Exception:
        return False


def value_matches(result: str | None, expected: object) -> bool:
    if result is None:
        return False
    if isinstance(expected, str):
        return same_expression(result if "=" in expected else value_of(result), expected)
    found = _NUMBER.match(value_of(result))
    if not found:
        return False
    got = float(found["n"]) / (float(found["d"]) if found["d"] else 1.0)
    want = float(expected)
    return abs(got - want) <= 1e-6 * abs(want) + 1e-9


def score(question: Question, trace: dict | None, error: str | None) -> dict:
    gold_caps = [cap for cap, _ in question.parts]
    gold_edges = Counter((gold_caps[a], gold_caps[b]) for a, b in question.edges)
    tasks = (trace or {}).get("tasks", [])
    caps = [t["capability"] for t in tasks]
    by_key = {t["key"]: t for t in tasks}
    edges = Counter(
        (by_key[d]["capability"], t["capability"]) for t in tasks for d in t["depends_on"] if d in by_key
    )
    # Align the expected parts with the sub-tasks in order, by capability.
    aligned, at = [], 0
    for cap, _ in question.parts:
        match = next((i for i in range(at, len(tasks)) if tasks[i]["capability"] == cap), None)
        aligned.append(None if match is None else tasks[match])
        at = at if match is None else match + 1
    parts = []
    for (cap, expected), task in zip(question.parts, aligned, strict=True):
        if expected is None:
            continue
        ok = task is not None and task["status"] == "done" and task.get("verified") is True
        parts.append(
            {
                "capability": cap,
                "expected": expected,
                "got": None if task is None else (task["result"] or task["error"]),
                "model": None if task is None else task["model"],
                "exact": ok and value_matches(task["result"], expected),
            }
        )
    # A part a tool applies to, answered by a language model with a number in it.
    tool_applies_lm_numbers = sum(
        1
        for (cap, _), task in zip(question.parts, aligned, strict=True)
        if cap in EXACT_CAPABILITIES and task is not None and task.get("verified") is False
    )
    lm_numbers = sum(1 for t in tasks if t.get("verified") is False)
    return {
        "question": question.text,
        "kind": question.kind,
        "error": error,
        "plan": caps,
        "expected_plan": gold_caps,
        "node_f1": f1(Counter(caps), Counter(gold_caps)),
        "edge_f1": f1(edges, gold_edges),
        "parts": parts,
        "exact": bool(parts) and all(p["exact"] for p in parts) and error is None,
        "general_model_numbers_where_a_tool_applies": tool_applies_lm_numbers,
        "general_model_numbers": lm_numbers,
    }


async def ask_all(base: str, key: str, questions: list[Question], concurrency: int) -> list[dict]:
    gate = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=300) as client:

        async def one(i: int, question: Question) -> dict:
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/query", json={"prompt": question.text})
                seconds = time.perf_counter() - started
            if response.status_code == 200:
                trace, error = response.json(), None
            else:
                trace, error = None, f"{response.status_code}: {response.text[:300]}"
            scored = score(question, trace, error)
            scored["seconds"] = round(seconds, 2)
            mark = "ok " if scored["exact"] or not scored["parts"] else "MISS"
            print(f"[{i + 1:>3}/{len(questions)}] {mark} {question.text[:90]}", flush=True)
            return scored

        return await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))


def start_app() -> tuple[str, str, object]:
    """The embedded app on a local Ray, the default model loaded, a funded key."""
    import ray
    from ray import serve

    from deployments.app import build_app
    from prsm.services import Services
    from prsm.settings import Settings
    from tests.services import free_port

    apply_ray_env()
    port = free_port()
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="prsm-answers-")),
        model_dir=MODEL_DIR,
        port=port,
        _env_file=None,
    )
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings.portable()), name="prsm", route_prefix="/")
    with Services(settings) as services:
        token, _ = services.keys.create("bench")
        services.ledger.mint("bench", 10**24, "bench-faucet")

    def stop() -> None:
        serve.shutdown()
        ray.shutdown()

    return f"http://127.0.0.1:{port}", token, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every fourth question (about 40)")
    parser.add_argument("--url", help="a running app (default: start the embedded one)")
    parser.add_argument("--key", default=os.environ.get("PRSM_API_KEY"), help="its API key (or PRSM_API_KEY)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    questions = QUESTIONS[::4] if args.quick else QUESTIONS
    if args.url and not args.key:
        parser.error("--url needs --key (or PRSM_API_KEY)")
    stop = None
    if args.url:
        base, key = args.url.rstrip("/"), args.key
    else:
        base, key, stop = start_app()
    try:
        started = time.perf_counter()
        rows = asyncio.run(ask_all(base, key, questions, args.concurrency))
        seconds = time.perf_counter() - started
    finally:
        if stop is not None:
            stop()

    numeric = [r for r in rows if r["parts"]]
    parts = [p for r in rows for p in r["parts"]]
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        mine = [r for r in numeric if r["kind"] == kind]
        by_kind[kind] = {
            "questions": len([r for r in rows if r["kind"] == kind]),
            "exact_share": sum(r["exact"] for r in mine) / max(len(mine), 1),
            "node_f1": sum(r["node_f1"] for r in rows if r["kind"] == kind)
            / len([r for r in rows if r["kind"] == kind]),
        }
    result = {
        "benchmark": "answers",
        "quick": args.quick,
        "machine": machine(),
        "questions": len(rows),
        "questions_with_numbers": len(numeric),
        "parts_with_numbers": len(parts),
        "exact_share": sum(r["exact"] for r in numeric) / max(len(numeric), 1),
        "exact_parts_share": sum(p["exact"] for p in parts) / max(len(parts), 1),
        "plan_node_f1": sum(r["node_f1"] for r in rows) / len(rows),
        "plan_edge_f1": sum(r["edge_f1"] for r in rows) / len(rows),
        "general_model_numbers_where_a_tool_applies": sum(
            r["general_model_numbers_where_a_tool_applies"] for r in rows
        ),
        "general_model_numbers_in_answers": sum(r["general_model_numbers"] for r in rows),
        "errors": sum(1 for r in rows if r["error"]),
        "targets": TARGETS,
        "exact_share_ratio_to_target": (sum(r["exact"] for r in numeric) / max(len(numeric), 1))
        / TARGETS["exact_share"],
        "plan_node_f1_ratio_to_target": (sum(r["node_f1"] for r in rows) / len(rows))
        / TARGETS["plan_node_f1"],
        "seconds": round(seconds, 1),
        "by_kind": by_kind,
        "misses": [r for r in numeric if not r["exact"]] + [r for r in rows if r["node_f1"] < 1],
    }
    print(
        f"\n{len(rows)} questions ({len(numeric)} with numbers, {len(parts)} numeric parts) in {seconds:.0f} s"
    )
    print(
        f"exact: {result['exact_share']:.3f} of questions, {result['exact_parts_share']:.3f} of parts (target >= 0.95)"
    )
    print(f"plan: node F1 {result['plan_node_f1']:.3f} (target >= 0.9), edge F1 {result['plan_edge_f1']:.3f}")
    print(f"numbers from a general model where a tool applies: {result['general_model_numbers_where_a_tool_applies']} "
          f"(target 0); in all answers: {result['general_model_numbers_in_answers']}")  # fmt: skip
    for kind, row in by_kind.items():
        print(
            f"  {kind:<11} {row['questions']:>3} questions, exact {row['exact_share']:.3f}, node F1 {row['node_f1']:.3f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
