"""One turn of the learning loop as an operator submits it (jobs/loop.py on a local Ray): traffic
answered by the real default model is clustered, the cluster's sub-tasks and the model's own
answers become a data set by CID, a student is distilled from them with Ray Train, registered
with its teacher, and started as a canary; its canary answers are graded against the teacher."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from tests.conftest import MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
STUDENT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
           "num_key_value_heads": 1, "head_dim": 32}  # fmt: skip
QUESTIONS = [
    "What is entropy?",
    "What is entropy in physics?",
    "what is entropy?",
    "What is entropy, briefly?",
]


def test_a_loop_turn_distils_the_busiest_cluster_and_starts_its_student_as_a_canary(tmp_path, embedder):
    from prsm import canary
    from prsm.nwtn.route import Router
    from prsm.registry import DEFAULT_MODEL_ID
    from prsm.services import Services
    from prsm.settings import Settings
    from tests.conftest import orchestrator

    settings = Settings(data_dir=tmp_path, model_dir=MODEL_DIR, max_new_tokens=12, _env_file=None)
    with Services.from_settings(settings, upgrade=True) as services:
        services.registry.ensure_defaults()
        nwtn = orchestrator(services, Router(services.registry, embedder), services.models)
        for i in range(10):  # the real default model answers: these are the teacher's logged answers
            trace = asyncio.run(nwtn.query(QUESTIONS[i % len(QUESTIONS)], "alice"))
            assert trace["tasks"][0]["model"] == DEFAULT_MODEL_ID

    env = {**os.environ, "PRSM_DATA_DIR": str(tmp_path), "PRSM_MODEL_DIR": str(MODEL_DIR),
           "PRSM_MAX_NEW_TOKENS": "12", "RAY_ADDRESS": "local", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    args = [sys.executable, str(REPO / "jobs/loop.py"), "--steps", "12", "--student", json.dumps(STUDENT),
            "--batch-size", "2", "--min-size", "8", "--json"]  # fmt: skip
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    turn = json.loads(done.stdout.strip().splitlines()[-1])
    assert turn["teacher"] == DEFAULT_MODEL_ID and turn["examples"] == 10 and turn["left_out"] == 0
    assert turn["canary"]["status"] == "canary" and turn["canary"]["share"] == canary.STEPS[0]
    # the canary's bar is scaled by the teacher's own agreement across the cluster's wordings
    assert 0.6 <= turn["consistency"] <= 1 and turn["canary"]["baseline"] == turn["consistency"]

    with Services(settings) as services:
        card = services.registry.get(turn["student"])
        assert card.teacher == DEFAULT_MODEL_ID and card.evaluation["data_cid"]
        data = services.artifacts.get(turn["dataset"])
        assert data["kind"] == "dataset" and data["name"].startswith(f"loop-{turn['cluster']}-")
        records = [json.loads(line) for line in services.store.read(turn["dataset"]).splitlines()]
        assert {r["prompt"] for r in records} <= set(QUESTIONS) and all(r["completion"] for r in records)

        # Every sub-task of the cluster to the student now; each answer graded against the teacher.
        with services.db.engine.begin() as conn:
            conn.execute(update(canary.CANARIES).values(share=1.0))
        services.ledger.mint(settings.operator_account, 10**17, "fund-grading")
        nwtn = orchestrator(services, Router(services.registry, embedder), services.models)

        async def ask():
            trace = await nwtn.query("What is entropy?", "alice")
            await nwtn.grades_written()
            return trace

        trace = asyncio.run(ask())
        assert (
            trace["tasks"][0]["model"] == turn["student"] and trace["tasks"][0]["cluster"] == turn["cluster"]
        )
        (state,) = canary.status(services.db)
        assert state["grades"] == 1 and 0 <= state["mean_grade"] <= 1
