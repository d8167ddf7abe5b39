"""The transformers backend with a tiny random model and the real SmolLM2 tokenizer; model
weights by CID loaded and answering; the shipped default model imported into the store."""

import asyncio

import pytest

from prsm.backends.causal_lm import CausalLMBackend
from prsm.errors import ModelCallFailed
from prsm.nwtn.plan import PlanSpec, llm_planner_messages, plan_response_format
from prsm.registry import DEFAULT_MODEL_ID
from prsm.types import ModelCall, ModelCard
from prsm.weights import cached_folder, import_folder
from tests.conftest import MODEL_DIR


def test_generates_with_the_chat_template_and_counts_tokens(tiny_model_dir):
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    call = ModelCall(({"role": "user", "content": "What is entropy?"},), max_new_tokens=5)
    out = asyncio.run(backend.run(call))
    assert out.tokens_out == 5
    assert out.tokens_in > 5  # the chat template wraps the question
    assert isinstance(out.text, str)
    assert out.finish_reason == "length"  # cut at its budget, as OpenAI's clients read it
    *_, last = asyncio.run(drain_stream(backend, call))
    assert last.finish_reason == "length" and last.tokens_out == 5


async def drain_stream(backend, call):
    return [piece async for piece in backend.stream(call)]


def test_generation_is_deterministic(tiny_model_dir):
    backend = CausalLMBackend.load(f"file://{tiny_model_dir}", MODEL_DIR)
    call = ModelCall(({"role": "user", "content": "Hello"},), max_new_tokens=4)
    assert asyncio.run(backend.run(call)) == asyncio.run(backend.run(call))


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


def test_messages_past_the_models_context_are_refused_before_any_work(tiny_model_dir):
    """A 50,000-word message once held a replica for minutes; now it is the caller's mistake
    (OpenAI's context_length_exceeded), said at once, and the model answers the next call."""
    import time

    from prsm.errors import BadInstruction, ContextTooLong

    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    huge = ModelCall(({"role": "user", "content": "word " * 50_000},), 8)
    started = time.perf_counter()
    for attempt in (backend.run(huge), anext(backend.stream(huge))):
        with pytest.raises(ContextTooLong, match="at most 4096") as refused:
            asyncio.run(attempt)
        assert isinstance(refused.value, BadInstruction) and refused.value.field == "messages"
    assert time.perf_counter() - started < 5
    assert refused.value.status_code == 400 and refused.value.code == "context_length_exceeded"
    fits = ModelCall(({"role": "user", "content": "word " * 100},), 4096 - 50)
    with pytest.raises(ContextTooLong):  # the budget counts too
        asyncio.run(backend.run(fits))
    assert asyncio.run(backend.run(ModelCall(({"role": "user", "content": "hi"},), 3))).tokens_out == 3


def test_a_card_with_weights_by_cid_is_loaded_from_the_store_and_answers(
    services, registry, tiny_model_dir, tmp_path
):
    from prsm.backends import LocalModels

    cid = import_folder(tiny_model_dir, services.store, services.artifacts, "carol", licence="MIT")
    registry.register(ModelCard(id="tiny-by-cid", kind="transformers", description="a tiny model", tags=("text",),
                                owner="carol", licence="MIT", weights=f"ipfs://{cid}"))  # fmt: skip
    models = LocalModels(registry, tmp_path / "cache", services.store)
    call = ModelCall(({"role": "user", "content": "Hi"},), max_new_tokens=3)
    assert asyncio.run(models.run("tiny-by-cid", call)).tokens_out == 3
    assert cached_folder(cid, tmp_path / "cache").is_dir()


def test_the_default_model_is_imported_into_the_store_on_first_use(services):
    weights, folder = services.prepare_default_model()
    cid = weights.removeprefix("ipfs://")
    assert services.registry.get(DEFAULT_MODEL_ID).weights == weights == f"ipfs://{cid}"
    record = services.artifacts.get(cid)
    assert record["kind"] == "model" and record["licence"] == "Apache-2.0" and cid in services.store.pins()
    assert services.store.put_dir(folder) == cid  # it loads from exactly the stored folder
    assert services.prepare_default_model() == (weights, folder)  # once: the second call finds it done


def test_concurrent_calls_share_forward_passes_and_each_gets_exactly_its_answer_alone():
    """Continuous batching (prsm/backends/batching.py) on the real default model, greedy: calls of
    different lengths arriving at different times get the very tokens they get alone (and that
    transformers' own `generate` gives), in fewer forward passes than one call at a time."""
    import torch

    from prsm.registry import DEFAULT_WEIGHTS

    backend = CausalLMBackend.load(DEFAULT_WEIGHTS, MODEL_DIR)
    topics = ["entropy", "a photon", "an enzyme", "inertia", "a gene", "osmosis"]
    calls = [ModelCall(({"role": "user", "content": f"Explain {t} in one sentence."},), n)
             for t, n in zip(topics, [3, 16, 5, 12, 16, 1], strict=True)]  # fmt: skip

    async def together():
        async def one(i, call):
            await asyncio.sleep(0.03 * i)  # arriving while the others run
            return await backend.run(call)

        return await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))

    alone = [asyncio.run(backend.run(c)) for c in calls]
    steps = backend.batcher.steps
    assert asyncio.run(together()) == alone
    assert backend.batcher.steps - steps < sum(c.max_new_tokens for c in calls) - len(calls)  # shared
    prompt = backend.prompt_ids(list(calls[1].messages))
    with torch.inference_mode():
        reference = backend.model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                           pad_token_id=backend.tokenizer.eos_token_id)  # fmt: skip
    assert (
        alone[1].text
        == backend.tokenizer.decode(reference[0][len(prompt) :], skip_special_tokens=True).strip()
    )


def test_a_caller_that_goes_away_leaves_the_batch_and_the_others_go_on(tiny_model_dir):
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    short = ModelCall(({"role": "user", "content": "Hello"},), max_new_tokens=6)
    alone = asyncio.run(backend.run(short))

    async def scenario():
        long = asyncio.create_task(backend.run(ModelCall(({"role": "user", "content": "Go on"},), 4000)))
        await asyncio.sleep(0.3)
        answer = await backend.run(short)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        for _ in range(100):  # the cancelled row leaves at the next step
            if not backend.batcher._rows:
                break
            await asyncio.sleep(0.02)
        return answer

    assert asyncio.run(scenario()) == alone
    assert backend.batcher._rows == []


def test_a_streamed_call_is_the_same_answer_in_pieces_and_stops_when_closed(tiny_model_dir):
    """Random weights make arbitrary tokens (byte pieces of characters, blanks): the pieces join
    to exactly `run`'s text with its counts; closing the stream takes its row out of the batch."""
    backend = CausalLMBackend.load(str(tiny_model_dir), MODEL_DIR)
    calls = [ModelCall(({"role": "user", "content": f"Tell me about {topic}"},), 48)
             for topic in ("tea", "Zürich", "π", "rain")]  # fmt: skip

    async def streamed(call):
        return [piece async for piece in backend.stream(call)]

    for call in calls:
        whole = asyncio.run(backend.run(call))
        pieces = asyncio.run(streamed(call))
        assert "".join(p.text for p in pieces) == whole.text
        assert (pieces[-1].tokens_in, pieces[-1].tokens_out) == (whole.tokens_in, whole.tokens_out)
        assert [p.tokens_out for p in pieces] == sorted(p.tokens_out for p in pieces)

    async def leaves():
        stream = backend.stream(ModelCall(({"role": "user", "content": "Go on"},), 4000))
        await anext(stream)
        await stream.aclose()  # the client went away
        for _ in range(100):
            if not backend.batcher._rows:
                break
            await asyncio.sleep(0.02)

    asyncio.run(leaves())
    assert backend.batcher._rows == []
