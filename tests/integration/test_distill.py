"""Distillation without Ray, with a tiny teacher that has the real tokenizer: checks before any
worker starts, the teacher's data cached by CID, and the training loop's checkpoints (a run
stopped and started again ends where an uninterrupted one does)."""

import json

import pytest
import torch

from prsm.distill.job import prepare
from prsm.distill.spec import DistillSpec
from prsm.errors import InvalidInput

# A one-layer student of the default model's family: small enough to train in seconds.
TINY = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 8}  # fmt: skip


@pytest.fixture
def with_tiny_teacher(registry, tiny_model_dir):
    from prsm.types import ModelCard

    registry.register(ModelCard(id="tiny-teacher", kind="transformers", description="a tiny teacher",
                                tags=("glaciology",), owner="dora", licence="MIT", weights=str(tiny_model_dir),
                                price_per_1k_tokens=10**15))  # fmt: skip
    return "tiny-teacher"


def prompt_set(services, prompts: list[str]) -> str:
    return services.store.put("".join(json.dumps({"prompt": p}) + "\n" for p in prompts).encode())


@pytest.mark.parametrize(
    "change,field,words",
    [
        ({"teacher": "no-such-model"}, "teacher", "no model"),
        ({"teacher": "sympy-cas"}, "teacher", "a teacher is a transformers model"),
        (
            {"student": json.dumps({"num_hidden_layers": 40, "hidden_size": 1152, "head_dim": 128})},
            "student",
            "not smaller",
        ),
        ({"student": json.dumps({"hidden_size": 1000})}, "student", "is invalid"),
        ({"student": json.dumps({**TINY, "vocab_size": 1000})}, "student", "vocabulary"),
        ({"student": json.dumps({"no_such_field": 1})}, "student", "no field"),
        ({"student": "no-such-preset"}, "student", "not a preset"),
    ],
)
def test_bad_jobs_are_refused_before_any_worker_starts(services, registry, change, field, words):
    spec = DistillSpec(**({"teacher": "smollm2-135m-instruct", "student": json.dumps(TINY)} | change))
    with pytest.raises(InvalidInput) as info:
        prepare(spec, services, say=lambda m: None)
    assert info.value.field == field and words in info.value.message


def test_empty_data_is_refused(services, registry):
    spec = DistillSpec(
        teacher="smollm2-135m-instruct", student=json.dumps(TINY), data=prompt_set(services, [])
    )
    with pytest.raises(InvalidInput) as info:
        prepare(spec, services, say=lambda m: None)
    assert info.value.field == "data" and "no prompts" in info.value.message


def test_the_teachers_data_is_made_once_and_found_by_cid(services, with_tiny_teacher):
    prompts = [f"Why is glacier {i} moving?" for i in range(12)]
    spec = DistillSpec(teacher=with_tiny_teacher, student=json.dumps(TINY), data=prompt_set(services, prompts),
                       max_new_tokens=4, held_out=0.25)  # fmt: skip
    calls = []
    first = prepare(spec, services, say=lambda m: None, generation_progress=lambda *a: calls.append(a))
    assert calls and calls[-1][:2] == (12, 12)
    assert len(first.train) + len(first.held_out) == 12 and first.held_out
    assert all(0 < len(r["output_ids"]) <= 4 for r in first.train)
    again = prepare(spec, services, say=lambda m: None, generation_progress=lambda *a: calls.append("again"))
    assert again.data_cid == first.data_cid and "again" not in calls  # not generated twice
    assert [r["prompt"] for r in again.held_out] == [r["prompt"] for r in first.held_out]


def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_one_does(
    services, with_tiny_teacher, tmp_path
):
    from prsm.distill.train import FINAL, Context, train

    prompts = [f"Describe ice sheet number {i}." for i in range(10)]
    spec = DistillSpec(teacher=with_tiny_teacher, student=json.dumps(TINY), data=prompt_set(services, prompts),
                       max_new_tokens=6, steps=6, checkpoint_every=2, batch_size=3, lr=1e-2)  # fmt: skip
    config = prepare(spec, services, say=lambda m: None).train_config()

    unbroken = train(config, Context(tmp_path / "a"))

    class Stop(Exception):
        pass

    def stop_after_step_3(step, loss):
        if step == 3:
            raise Stop  # killed between the checkpoints of steps 2 and 4

    with pytest.raises(Stop):
        train(config, Context(tmp_path / "b", progress=stop_after_step_3))
    resumed = train(config, Context(tmp_path / "b"))
    assert resumed["resumed_from"] == 2 and unbroken["resumed_from"] == 0
    assert resumed["step"] == unbroken["step"] == 6
    a = torch.load(tmp_path / "a" / "state.pt")["student"]
    b = torch.load(tmp_path / "b" / "state.pt")["student"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (tmp_path / "b" / FINAL / "model.safetensors").exists()


def test_distillation_lowers_the_loss(services, with_tiny_teacher, tmp_path):
    from prsm.distill.train import Context, train

    prompts = [f"Explain crevasse {i}." for i in range(8)]
    spec = DistillSpec(teacher=with_tiny_teacher, student=json.dumps(TINY), data=prompt_set(services, prompts),
                       max_new_tokens=6, steps=40, checkpoint_every=40, batch_size=4, lr=2e-2)  # fmt: skip
    config = prepare(spec, services, say=lambda m: None).train_config()
    losses = []
    train(config, Context(None, progress=lambda step, loss: losses.append(loss)))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_a_worker_without_the_drivers_teacher_folder_resolves_the_teacher_itself(settings, tiny_model_dir):
    from prsm.distill.train import teacher_folder

    here = {"teacher_folder": str(tiny_model_dir), "teacher_weights": "unused", "settings": {}}
    assert teacher_folder(here) == str(tiny_model_dir)
    elsewhere = {"teacher_folder": "/no/such/folder/on/this/node", "teacher_weights": f"file://{tiny_model_dir}",
                 "settings": settings.portable()}  # fmt: skip
    assert teacher_folder(elsewhere) == str(tiny_model_dir)
