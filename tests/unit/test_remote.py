"""NWTN's side of the Ray boundary (prsm/nwtn/remote.py), driven with in-process callables."""

import asyncio

from prsm.errors import ModelCallFailed, UnknownModel
from prsm.nwtn.remote import Coalescer, ModelClient
from prsm.types import ModelCall, ModelKind, ModelOutput


def test_a_lone_call_goes_out_at_once_and_concurrent_calls_share_batches():
    batches = []

    async def send(items):
        batches.append(list(items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    async def scenario():
        c = Coalescer(send, max_in_flight=1)
        assert await c.call(1) == 10
        results = await asyncio.gather(*(c.call(i) for i in range(2, 12)))
        return c, results

    _, results = asyncio.run(scenario())
    assert results == [i * 10 for i in range(2, 12)]
    assert batches[0] == [1]
    assert batches[1] == [2]  # went out alone; the rest waited for it and left together
    assert batches[2] == list(range(3, 12))


def test_each_item_gets_its_own_error_and_a_failed_batch_fails_all_of_it():
    async def send(items):
        await asyncio.sleep(0.01)
        if "boom" in items:
            raise ConnectionError("replica died")
        return [ValueError(i) if i == "bad" else i.upper() for i in items]

    async def scenario():
        c = Coalescer(send, max_in_flight=1)
        # The first call occupies the only slot; the two after it share the next batch.
        _, good, bad = await asyncio.gather(
            c.call("first"), c.call("ok"), c.call("bad"), return_exceptions=True
        )
        _, *died = await asyncio.gather(c.call("first"), c.call("boom"), c.call("x"), return_exceptions=True)
        return good, bad, died

    good, bad, died = asyncio.run(scenario())
    assert good == "OK" and isinstance(bad, ValueError)
    assert all(isinstance(d, ConnectionError) for d in died)


def test_a_batch_never_exceeds_max_batch():
    sizes = []

    async def send(items):
        sizes.append(len(items))
        await asyncio.sleep(0)
        return items

    async def scenario():
        c = Coalescer(send, max_batch=4, max_in_flight=1)
        await asyncio.gather(*(c.call(i) for i in range(17)))

    asyncio.run(scenario())
    assert max(sizes) == 4 and sum(sizes) == 17


class Wrapped(Exception):
    """What Ray raises for an error in another replica: the original as `cause`."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


def test_light_models_are_batched_per_model_and_heavy_ones_called_alone():
    calls: list[tuple[str, str, int]] = []

    def heavy(model_id):
        async def one(call):
            calls.append(("heavy", model_id, 1))
            return ModelOutput(f"{model_id}: {call.last_user_text}")

        return one

    def light(model_id):
        async def many(batch):
            calls.append(("light", model_id, len(batch)))
            await asyncio.sleep(0.01)
            return [ModelOutput(f"{model_id}: {c.last_user_text}") for c in batch]

        return many

    client = ModelClient(heavy, light)

    async def scenario():
        asks = (
            [("lm", ModelKind.TRANSFORMERS)] * 2
            + [("math", ModelKind.TOOL)] * 5
            + [("api", ModelKind.OPENAI)]
        )
        return await asyncio.gather(
            *(
                client(m, k, ModelCall(({"role": "user", "content": str(i)},)))
                for i, (m, k) in enumerate(asks)
            )
        )

    outputs = asyncio.run(scenario())
    assert [o.text for o in outputs] == ["lm: 0", "lm: 1", *(f"math: {i}" for i in range(2, 7)), "api: 7"]
    assert [c for c in calls if c[0] == "heavy"] == [("heavy", "lm", 1)] * 2
    assert (
        sum(n for kind, m, n in calls if m == "math") == 5 and len([c for c in calls if c[1] == "math"]) == 2
    )


def test_a_replicas_error_is_raised_as_itself_and_other_failures_as_model_call_failed():
    def light(model_id):
        async def many(batch):
            return [UnknownModel("no such tool", "endpoint") if c.last_user_text == "bad" else ModelOutput("ok")
                    for c in batch]  # fmt: skip

        return many

    def heavy(model_id):
        async def one(call):
            if call.last_user_text == "wrapped":
                raise Wrapped(UnknownModel("gone", "model"))
            raise ConnectionError("replica died")

        return one

    client = ModelClient(heavy, light)

    async def ask(model_id, kind, text):
        try:
            return await client(model_id, kind, ModelCall(({"role": "user", "content": text},)))
        except Exception as exc:
            return exc

    bad = asyncio.run(ask("math", ModelKind.TOOL, "bad"))
    assert type(bad) is UnknownModel and bad.field == "endpoint"
    wrapped = asyncio.run(ask("lm", ModelKind.TRANSFORMERS, "wrapped"))
    assert type(wrapped) is UnknownModel and wrapped.message == "gone"
    died = asyncio.run(ask("lm", ModelKind.TRANSFORMERS, "x"))
    assert type(died) is ModelCallFailed and "ConnectionError: replica died" in died.message


def test_under_load_the_next_batch_waits_a_moment_for_company():
    batches = []

    async def send(items):
        batches.append(list(items))
        await asyncio.sleep(0.01)
        return items

    async def scenario():
        c = Coalescer(send, linger_s=0.05)
        calls = [asyncio.ensure_future(c.call(i)) for i in range(3)]  # 0 alone, then 1 and 2
        await asyncio.sleep(0.015)  # [1, 2] is out: load is here
        calls.append(asyncio.ensure_future(c.call(3)))
        await asyncio.sleep(0.02)  # [1, 2] came back; 3 is waiting for company
        calls += [asyncio.ensure_future(c.call(i)) for i in (4, 5)]
        return await asyncio.gather(*calls)

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4, 5]
    assert batches == [[0], [1, 2], [3, 4, 5]]
