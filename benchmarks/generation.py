"""Batched generation against one call at a time, on the default model (issue 16 §1).

In one run, on this machine's CPU, the default model (SmolLM2-135M-Instruct, greedy, PRSM's default
budget of new tokens) answers explanation sub-tasks (the chat template and NWTN's general system
prompt, varied topics; each answer ends at its end-of-sequence token or its budget):
  - a wave of 1, 8 and 32 sub-tasks at once (one query's concurrent sub-tasks), and a sustained
    load of 8 callers each sending its next call when its last is answered (24 calls);
  - batched: PRSM's backend (prsm/backends/batching.py), the calls sharing forward passes
    (continuous batching, up to its batch size; rows per pass reported);
  - the baseline: the same calls one at a time with transformers' `generate`, as every sub-task
    was served before (one `generate` per call behind a lock). At 1 and 8 calls the baseline and
    the wave take turns, twice each, so this VM's drift in speed falls on both alike.
Tokens per second of both and their ratio (target at 8 concurrent: >= 3x), and whether every
call's tokens are the same batched and alone. Then a mixed load: calls with different budgets
arriving 50 ms apart, each call's latency against its own length alone. Then streaming (§2):
time to the first piece of text beside the whole answer's time, 1 and 8 calls at once. Last,
what one decoding pass costs with 1, 4 and 8 rows (200 tokens of context each). For each wave,
the ceiling its answers' lengths put on batching: all its tokens over its longest answer's (the
ratio if a pass cost the same with any number of rows).

    python benchmarks/generation.py [--quick]
Writes benchmarks/results/generation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from machine import machine, report  # noqa: E402  (benchmarks/machine.py)

from prsm.backends.causal_lm import CausalLMBackend  # noqa: E402
from prsm.nwtn.execute import GENERAL_SYSTEM_PROMPT  # noqa: E402
from prsm.registry import DEFAULT_WEIGHTS  # noqa: E402
from prsm.settings import Settings  # noqa: E402
from prsm.types import ModelCall  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "generation.json"
MODEL_DIR = Path.home() / ".prsm" / "models"
TARGET = 3.0
ROUNDS = 2  # turns of baseline and batched wave, at 1 and 8 calls
TOPICS = ["entropy", "a photon", "an enzyme", "a catalyst", "inertia", "a gene", "a prime number", "osmosis",
          "a black hole", "pH", "momentum", "a neutron star", "an isotope", "diffusion", "a vaccine", "torque"]  # fmt: skip


def call_for(i: int, tokens: int) -> ModelCall:
    topic = TOPICS[i % len(TOPICS)]
    words = ("Explain", "Describe", "Define")[i // len(TOPICS) % 3]
    messages = ({"role": "system", "content": GENERAL_SYSTEM_PROMPT},
                {"role": "user", "content": f"{words} {topic} in one or two sentences."})  # fmt: skip
    return ModelCall(messages, tokens)


def one_at_a_time(backend: CausalLMBackend, calls: list[ModelCall]) -> tuple[list[float], list[list[int]]]:
    """The baseline: transformers' generate, one call after another (the code this replaces):
    each call's seconds and tokens."""
    tokenizer, model = backend.tokenizer, backend.model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seconds, outputs = [], []
    for call in calls:
        started = time.perf_counter()
        prompt = backend.prompt_ids(list(call.messages))
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
                                 max_new_tokens=call.max_new_tokens, do_sample=False, pad_token_id=pad)  # fmt: skip
        outputs.append(out[0][len(prompt) :].tolist())
        seconds.append(time.perf_counter() - started)
    return seconds, outputs


async def batched(
    backend: CausalLMBackend, calls: list[ModelCall], gaps_s: float = 0.0
) -> tuple[float, list, list]:
    """The calls submitted concurrently (each `gaps_s` after the one before): elapsed seconds,
    each call's tokens and its own latency."""

    async def one(i: int, call: ModelCall):
        await asyncio.sleep(i * gaps_s)
        t0 = time.perf_counter()
        prompt = backend.prompt_ids(list(call.messages))
        tokens = await asyncio.wrap_future(backend.batcher.submit(prompt, call.max_new_tokens))
        return tokens, time.perf_counter() - t0

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
    return time.perf_counter() - started, [r[0] for r in results], [r[1] for r in results]


async def sustained(backend: CausalLMBackend, calls: list[ModelCall], concurrent: int) -> tuple[float, list]:
    """`concurrent` callers share `calls`, each taking the next when its last is answered."""
    tokens: list = [None] * len(calls)
    queue = list(range(len(calls)))

    async def caller():
        while queue:
            i = queue.pop(0)
            prompt = backend.prompt_ids(list(calls[i].messages))
            tokens[i] = await asyncio.wrap_future(backend.batcher.submit(prompt, calls[i].max_new_tokens))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrent)))
    return time.perf_counter() - started, tokens


def step_ms(backend: CausalLMBackend, rows: int, context: int = 200, steps: int = 20) -> float:
    """Milliseconds of one decoding pass for `rows` rows at `context` tokens of cache each (the
    batcher's own call: mask, positions, cache), what a batched pass costs against a single one."""
    from transformers import DynamicCache

    model, cache = backend.model, DynamicCache()
    ids = torch.randint(100, 1000, (rows, context), generator=torch.Generator().manual_seed(rows))
    mask = torch.ones((rows, context), dtype=torch.long)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for i in range(steps):
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=torch.long)], dim=1)
            positions = torch.full((rows, 1), context + i)
            out = model(input_ids=nxt, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                        logits_to_keep=1)  # fmt: skip
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    return (time.perf_counter() - started) / steps * 1000


async def streamed(backend: CausalLMBackend, calls: list[ModelCall]) -> tuple[list[float], list[float]]:
    """The calls streamed at once: each one's seconds to its first piece of text and to its end."""

    async def one(call: ModelCall) -> tuple[float, float]:
        started, first = time.perf_counter(), None
        async for piece in backend.stream(call):
            if first is None and piece.text:
                first = time.perf_counter() - started
        whole = time.perf_counter() - started
        return (first if first is not None else whole), whole

    results = await asyncio.gather(*(one(c) for c in calls))
    return [r[0] for r in results], [r[1] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens per call (a few minutes)")
    args = parser.parse_args()
    tokens = 24 if args.quick else Settings(_env_file=None).max_new_tokens  # PRSM's default budget
    backend = CausalLMBackend.load(
        DEFAULT_WEIGHTS, MODEL_DIR, num_threads=torch.get_num_threads(), max_batch=32
    )
    warm = [call_for(0, 4)]
    one_at_a_time(backend, warm)
    asyncio.run(batched(backend, warm))
    figures: dict = {"new_tokens_per_call": tokens, "max_batch": backend.batcher.max_batch}
    # The baseline once, call by call: every measure below compares the same calls.
    calls = [call_for(i, tokens) for i in range(32)]
    print(f"baseline: 32 calls one at a time, up to {tokens} new tokens each ...", flush=True)
    base_s, base_tokens = one_at_a_time(backend, calls)

    def compare(
        name: str, n: int, elapsed: float, got: list, steps: int, base_rate: float | None = None
    ) -> None:
        if base_rate is None:
            base_rate = sum(map(len, base_tokens[:n])) / sum(base_s[:n])
        rate = sum(map(len, got)) / elapsed
        figures.update({
            f"{name}_calls": n,
            f"{name}_one_at_a_time_tokens_per_s": round(base_rate, 2),
            f"{name}_batched_tokens_per_s": round(rate, 2),
            f"{name}_throughput_ratio": round(rate / base_rate, 3),
            f"{name}_mean_rows_per_pass": round(sum(map(len, got)) / max(steps, 1), 2),
            # every round's answers (a wave may run more than once) against the calls alone
            f"{name}_same_tokens": all(got[i : i + n] == base_tokens[:n] for i in range(0, len(got), n)),
        })  # fmt: skip
        if name.startswith("c") and name[1:].isdigit():  # a wave: all its calls start at once
            # A wave takes at least as many passes as its longest answer has tokens; if a pass
            # cost the same with any number of rows, batching would reach (all tokens) / (the
            # longest answer's) over one at a time, and no more: the ceiling its answers allow.
            lengths = [len(t) for t in got[:n]]
            figures[f"{name}_tokens_per_call"] = lengths
            figures[f"{name}_ratio_ceiling_if_rows_were_free"] = round(sum(lengths) / max(lengths), 3)
        print({k: v for k, v in figures.items() if k.startswith(f"{name}_")}, flush=True)

    for concurrent in (1, 8, 32):  # a wave: one query's `concurrent` sub-tasks, all at once
        if concurrent == 32:  # the baseline above, measured once (32 calls alone take minutes)
            steps = backend.batcher.steps
            elapsed, got, _ = asyncio.run(batched(backend, calls[:concurrent]))
            compare(f"c{concurrent}", concurrent, elapsed, got, backend.batcher.steps - steps)
            continue
        # The baseline and the wave take turns (ROUNDS each), so that this VM's drift in speed
        # (tens of percent over minutes) falls on both alike.
        base_tokens_n = base_seconds_n = elapsed = steps = 0
        answers: list = []
        for _ in range(ROUNDS):
            seconds, alone = one_at_a_time(backend, calls[:concurrent])
            base_tokens_n += sum(map(len, alone))
            base_seconds_n += sum(seconds)
            before = backend.batcher.steps
            took, got, _ = asyncio.run(batched(backend, calls[:concurrent]))
            elapsed, steps = elapsed + took, steps + backend.batcher.steps - before
            answers += got
        figures[f"c{concurrent}_rounds"] = ROUNDS
        compare(f"c{concurrent}", concurrent, elapsed, answers, steps, base_tokens_n / base_seconds_n)
    # Sustained: 8 callers, each sending its next call when its last is answered (the sub-tasks
    # of concurrent queries arriving over time), 24 calls in all.
    steps = backend.batcher.steps
    elapsed, got = asyncio.run(sustained(backend, calls[:24], 8))
    compare("c8_sustained", 24, elapsed, got, backend.batcher.steps - steps)

    # Mixed budgets, staggered: a short call is not held back by long ones past its own length.
    budgets = [4, tokens, 8, tokens // 2, tokens, 2, tokens, 12]
    calls = [call_for(i, b) for i, b in enumerate(budgets)]
    alone = []
    for call in calls:
        _, _, latency = asyncio.run(batched(backend, [call]))
        alone.append(latency[0])
    _, mixed_tokens, mixed = asyncio.run(batched(backend, calls, gaps_s=0.05))
    _, alone_tokens = one_at_a_time(backend, calls)
    short = [i for i, b in enumerate(budgets) if b <= 8]
    figures |= {
        "mixed_budgets": budgets,
        "mixed_latency_s": [round(x, 3) for x in mixed],
        "mixed_alone_latency_s": [round(x, 3) for x in alone],
        "mixed_short_calls_latency_ratio": round(statistics.mean(mixed[i] / alone[i] for i in short), 3),
        "mixed_same_tokens": mixed_tokens == alone_tokens,
    }
    # Streaming (issue 16 §2): time to the first piece of text against the whole answer's time,
    # one call alone and 8 at once (each streamed through the backend's `stream`).
    for concurrent in (1, 8):
        first, whole = asyncio.run(streamed(backend, [call_for(i, tokens) for i in range(concurrent)]))
        figures |= {
            f"stream_c{concurrent}_first_token_s": round(statistics.mean(first), 3),
            f"stream_c{concurrent}_full_answer_s": round(statistics.mean(whole), 3),
            f"stream_c{concurrent}_first_token_ratio": round(statistics.mean(first) / statistics.mean(whole), 3),
        }  # fmt: skip
        print({k: v for k, v in figures.items() if k.startswith(f"stream_c{concurrent}_")}, flush=True)
    # What a pass costs by its rows: the ceiling of batching on this CPU (a wave of 8 averages
    # fewer rows a pass, as short answers leave).
    for rows in (1, 4, 8):
        figures[f"step_ms_rows_{rows}"] = round(step_ms(backend, rows), 1)
    for rows in (4, 8):
        figures[f"step_cost_ratio_{rows}_vs_1"] = round(
            figures[f"step_ms_rows_{rows}"] / figures["step_ms_rows_1"], 3
        )
    print({k: v for k, v in figures.items() if k.startswith("step_")}, flush=True)
    result = {"machine": machine(), "quick": args.quick, "target_ratio_at_8": TARGET, **figures,
              "target_met": figures["c8_throughput_ratio"] >= TARGET}  # fmt: skip
    report(result, RESULTS)


if __name__ == "__main__":
    main()
