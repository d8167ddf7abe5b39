import asyncio

import pytest

from prsm.coalesce import Coalescer
from prsm.errors import ModelCallFailed, UnknownModel, error_dict, error_from_dict


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


@pytest.mark.parametrize("error", [UnknownModel("no such model", "model"), ModelCallFailed("bad input")])
def test_errors_cross_a_batch_boundary_as_themselves(error):
    back = error_from_dict(error_dict(error))
    assert type(back) is type(error) and back.message == error.message and back.field == error.field
