"""The OpenAPI document fuzzed with schemathesis against the running app, with a valid (funded
owner's) key: for every operation, a bounded number of generated requests; none may answer 5xx
or answer outside the document's schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from prsm.services import Services

EXAMPLES = 6  # per operation: each /v1/query example runs the real model


@pytest.fixture(scope="module")
def fuzz_key(prsm_app) -> str:
    with Services(prsm_app.settings) as services:
        token, _ = services.keys.create("fuzzer", "owner")
        services.ledger.mint("fuzzer", 10**18, "test-faucet-fuzzer")
    return token


def test_fuzzed_requests_get_no_5xx_and_answers_within_the_schema(prsm_app, fuzz_key):
    # The operations are walked here rather than through schemathesis's pytest plugin (its
    # fixture loader does not work with this pytest): each gets its own Hypothesis run.
    schema = schemathesis.openapi.from_url(f"{prsm_app.base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def fuzz(case):
            response = case.call(base_url=prsm_app.base_url, headers=headers, timeout=120)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # one operation's failure does not hide the others'
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
