"""A distillation job through Ray Train on a local Ray, as a user submits it: killed after its
first checkpoint and submitted again, it resumes there; the student it registers is stored by
CID, evaluated against the teacher, and the router sends it a query at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
STUDENT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
           "num_key_value_heads": 1, "head_dim": 32}  # fmt: skip
PROMPTS = ["What is entropy?", "Why is the sky blue?", "Define osmosis.", "What is a catalyst?",
           "Explain momentum.", "What is a prime number?", "What is a black hole?", "Define pH."]  # fmt: skip


def test_a_killed_job_resumes_and_its_student_answers_a_routed_query(tmp_path, embedder):
    from prsm.nwtn.route import Router
    from prsm.services import Services
    from prsm.settings import Settings
    from tests.conftest import orchestrator

    env = {**os.environ, "PRSM_DATA_DIR": str(tmp_path), "PRSM_MODEL_DIR": str(MODEL_DIR),
           "RAY_ADDRESS": "local", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    settings = Settings(data_dir=tmp_path, model_dir=MODEL_DIR, _env_file=None)
    with Services(settings) as services:
        data = services.store.put("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS).encode())
    args = [sys.executable, str(REPO / "jobs/distill.py"), "--teacher", "smollm2-135m-instruct",
            "--student", json.dumps(STUDENT), "--data", data, "--steps", "40", "--checkpoint-every", "4",
            "--batch-size", "2", "--max-new-tokens", "8", "--speed-tokens", "4", "--name", "tiny-student"]  # fmt: skip

    first = subprocess.Popen(args, env=env, cwd=REPO, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    runs = tmp_path / "distill"
    deadline = time.monotonic() + 240
    # Killed once a second checkpoint folder appears: Ray Train has then finished reporting the
    # first (a folder alone may be a checkpoint still being written, which a resume ignores).
    while len(list(runs.glob("*/checkpoint_*"))) < 2:
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint in 4 minutes"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started
    first.wait()

    second = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert "resumed from the checkpoint at step" in output

    with Services(settings) as services:
        registry = services.registry
        card = registry.get("tiny-student")
        e = card.evaluation
        assert e["resumed_from_step"] >= 4 and e["steps"] == 40 and e["teacher"] == "smollm2-135m-instruct"
        assert 0 <= e["top1_agreement"] <= 1 and e["kl"] > 0 and e["perplexity"] > 1
        assert e["parameter_ratio"] < 0.05
        assert card.quality == e["top1_agreement"] and card.teacher == "smollm2-135m-instruct"
        teacher = registry.get("smollm2-135m-instruct")
        assert card.tags == teacher.tags and card.price_per_1k_tokens < teacher.price_per_1k_tokens
        record = services.artifacts.get(card.weights.removeprefix("ipfs://"))
        assert record["kind"] == "model" and e["data_cid"] in record["parents"]

        nwtn = orchestrator(services, Router(registry, embedder), services.models)
        trace = asyncio.run(nwtn.query("What is entropy?", "alice"))
        assert trace["status"] == "completed" and trace["tasks"][0]["model"] == "tiny-student"
