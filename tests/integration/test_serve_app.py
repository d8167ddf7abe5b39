"""The Serve app over HTTP on one shared local Ray: end to end with the real default model."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from prsm.db.models import PlanTask, QuerySession, ReasoningStep
from prsm.services import Services

DEMO = (
    "Differentiate x^3*sin(x) with respect to x, then evaluate that at x = 1. "
    "Convert 42 km to miles. In one sentence, what is entropy?"
)


@pytest.fixture(scope="module")
def client(prsm_app):
    with prsm_app.client("alice") as c:  # an owner key of account alice, 1 FTNS
        yield c


@pytest.fixture(scope="module")
def demo_trace(client):
    response = client.post("/v1/query", json={"prompt": DEMO, "user": "end-user-1"})
    assert response.status_code == 200, response.text
    return response.json()


def row_counts(settings) -> tuple[int, int, int]:
    with Services(settings) as services, services.db.orm() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) for m in (QuerySession, PlanTask, ReasoningStep)
        )


def test_multi_part_question_is_answered_end_to_end_with_the_default_model(demo_trace):
    tasks = {t["key"]: t for t in demo_trace["tasks"]}
    assert demo_trace["status"] == "completed"
    assert tasks["t1"]["result"] == "x**3*cos(x) + 3*x**2*sin(x)"
    assert tasks["t2"]["result"] == "3.06471526029"
    assert tasks["t3"]["result"] == "26.09759007 mile"
    assert tasks["t4"]["model"] == "smollm2-135m-instruct"
    assert tasks["t4"]["tokens_out"] > 0 and tasks["t4"]["result"]
    for task in tasks.values():
        assert task["latency_ms"] > 0 and task["ranking"]
    assert "26.09759007 mile" in demo_trace["answer"]


def test_session_endpoint_returns_the_same_trace(client, demo_trace):
    stored = client.get(f"/v1/sessions/{demo_trace['session_id']}").json()
    assert stored == demo_trace
    assert client.get("/v1/sessions/no-such-session").status_code == 404


def test_models_are_listed_registered_and_duplicates_refused(client):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert list(models) == ["physics-formulas", "pint-units", "smollm2-135m-instruct", "sympy-cas"]
    weights = models["smollm2-135m-instruct"]["weights"]  # imported into the store at start
    assert weights.startswith("ipfs://")
    assert client.get(f"/v1/artifacts/{weights.removeprefix('ipfs://')}").json()["kind"] == "model"
    card = {"id": "cheap-algebra", "kind": "tool", "description": "Budget symbolic algebra",
            "licence": "MIT", "endpoint": "tool:math", "tags": ["math"]}  # fmt: skip
    made = client.post("/v1/models", json=card)
    assert made.status_code == 201 and made.json()["owner"] == "alice"  # the key's account
    duplicate = client.post("/v1/models", json=card)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "id"
    assert "cheap-algebra" in [m["id"] for m in client.get("/v1/models").json()["data"]]


@pytest.mark.parametrize(
    "body,status,field",
    [
        (json.dumps({"prompt": ""}).encode(), 422, "prompt"),
        (json.dumps({"prompt": "x" * 9000}).encode(), 422, "prompt"),
        (json.dumps({"prompt": "What?", "user": "no spaces allowed"}).encode(), 422, "user"),
        (b'{"prompt": "What is', 400, "body"),
        ('{"prompt": "caf\u00e9"}'.encode("latin-1"), 400, "body"),
        (
            json.dumps({"prompt": " ".join(f"{i}. What is {i} + 1?" for i in range(1, 20))}).encode(),
            422,
            "prompt",
        ),
        (json.dumps({"prompt": "y" * 300_000}).encode(), 413, "body"),
        (json.dumps({"prompt": "What is entropy?", "route": "fastest"}).encode(), 422, "route"),
        (json.dumps({"prompt": "What is entropy?", "route": 1.5}).encode(), 422, "route"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field_and_writes_nothing(client, prsm_app, body, status, field):
    before = row_counts(prsm_app.settings)
    response = client.post("/v1/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert row_counts(prsm_app.settings) == before


def test_openapi_document_lists_the_endpoints_and_their_bearer_key(prsm_app):
    with prsm_app.client(key=None) as anonymous:  # the document itself needs no key
        document = anonymous.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/v1/query", "/v1/sessions/{session_id}", "/v1/models", "/v1/chat/completions", "/healthz",
                 "/v1/keys"):  # fmt: skip
        assert path in paths
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert paths["/v1/query"]["post"]["security"] == [{"HTTPBearer": []}]


def test_official_openai_client_talks_to_a_model_and_to_nwtn(prsm_app):
    import openai

    client = openai.OpenAI(base_url=f"{prsm_app.base_url}/v1", api_key=prsm_app.keys["alice"])
    direct = client.chat.completions.create(
        model="sympy-cas", messages=[{"role": "user", "content": "integrate x^2 from 0 to 3"}]
    )
    assert direct.choices[0].message.content == "9"
    whole = client.chat.completions.create(
        model="nwtn", messages=[{"role": "user", "content": "Convert 1 mile to km. Integrate 2*x."}]
    )
    assert "1.609344 kilometer" in whole.choices[0].message.content
    assert "x**2" in whole.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    stranger = openai.OpenAI(base_url=f"{prsm_app.base_url}/v1", api_key="prsm_000000000000_" + "A" * 43)
    with pytest.raises(openai.AuthenticationError) as info:
        stranger.chat.completions.create(model="sympy-cas", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_api_key"


def test_the_official_client_streams_a_model_token_by_token_and_nwtn_event_by_event(client, prsm_app):
    """`stream: true` through Serve (NWTN -> the LM replica's streaming method): the same text,
    usage and charge as unstreamed, in chunks the official client's iterator reads."""
    import openai

    oai = openai.OpenAI(base_url=f"{prsm_app.base_url}/v1", api_key=prsm_app.keys["alice"])
    ask = {"model": "smollm2-135m-instruct", "max_tokens": 24,
           "messages": [{"role": "user", "content": "Name three planets of the solar system."}]}  # fmt: skip
    whole = oai.chat.completions.create(**ask)
    chunks = list(oai.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == whole.choices[0].message.content and len(content) > 3
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-2].model_extra["prsm_charge"]["charged"] == whole.model_extra["prsm_charge"]["charged"]
    # Content parts of type text, and a stop sequence from the answer's middle: the stream ends
    # before it, and what ran is charged (less than the whole answer).
    text = whole.choices[0].message.content
    stop = text[len(text) // 2 :][:4]
    parts = [{"type": "text", "text": "Name three planets of the solar system."}]
    cut = list(oai.chat.completions.create(**ask | {"messages": [{"role": "user", "content": parts}]},
                                           stop=[stop], stream=True))  # fmt: skip
    said = "".join(c.choices[0].delta.content or "" for c in cut if c.choices)
    assert said == text[: text.find(stop)] and cut[-1].choices[0].finish_reason == "stop"
    assert int(cut[-1].model_extra["prsm_charge"]["charged"]) < int(
        whole.model_extra["prsm_charge"]["charged"]
    )
    assert oai.chat.completions.create(**ask, stop=stop).choices[0].message.content == said

    query = {"role": "user", "content": "Integrate x^2 from 0 to 3. Convert 2 km to m."}
    chunks = list(oai.chat.completions.create(model="nwtn", messages=[query], stream=True))
    events = [c.model_extra["prsm_event"] for c in chunks if c.model_extra.get("prsm_event")]
    assert [e["event"] for e in events] == ["plan", "task", "task"]
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    trace = client.get(f"/v1/sessions/{events[0]['session_id']}").json()
    assert answer == trace["answer"] and "9" in answer
    with pytest.raises(openai.NotFoundError):  # before the first chunk: a plain HTTP error
        next(iter(oai.chat.completions.create(model="nope", messages=[query], stream=True)))


def test_a_client_that_disconnects_mid_stream_pays_only_for_the_tokens_it_was_sent(client, prsm_app):
    body = {"model": "smollm2-135m-instruct", "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]}  # fmt: skip
    before = int(client.get("/v1/accounts/alice").json()["balance"])
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        got = [line for line, _ in zip(lines, range(8), strict=False) if line.startswith("data: ")]
    assert len(got) >= 3  # hung up after a few chunks
    with Services(prsm_app.settings) as services:
        for _ in range(100):  # the charge lands once the stream has stopped on the server
            if services.ledger.balance("escrow:alice") == 0:
                break
            time.sleep(0.1)
        assert services.ledger.balance("escrow:alice") == 0
        paid = before - services.ledger.balance("alice")
    price = 2 * 10**15  # the default model's per 1k tokens
    assert 0 < paid < price * 200 // 1000  # the prompt and the few tokens made, not 1000 tokens


def test_remote_endpoint_backend_against_prsms_own_chat_completions(client, prsm_app):
    # A model card for an OpenAI-compatible endpoint: here PRSM's own /v1 (allowed by the
    # operator), serving the real default model, with alice's key as the card's credential. The
    # request crosses HTTP twice, through the real RemoteChatBackend.
    card = {"id": "remote-smollm2", "kind": "openai", "description": "SmolLM2 behind an OpenAI endpoint",
            "licence": "Apache-2.0", "endpoint": f"{prsm_app.base_url}/v1", "credential": prsm_app.keys["alice"],
            "remote_model": "smollm2-135m-instruct", "tags": ["general"]}  # fmt: skip
    assert client.post("/v1/models", json=card).status_code == 201
    body = {"model": "remote-smollm2", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Name a planet."}]}  # fmt: skip
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["usage"]["completion_tokens"] > 0
    assert data["choices"][0]["message"]["content"]


def test_cli_query_prints_the_trace_table_and_cli_register_reports_field_errors(
    prsm_app, monkeypatch, capsys
):
    from prsm.cli import main

    monkeypatch.setenv("PRSM_PORT", str(prsm_app.settings.port))
    monkeypatch.setenv("PRSM_API_KEY", prsm_app.keys["bob"])
    assert main(["query", "Integrate 3*x^2. Convert 2 hours to minutes."]) == 0
    out = capsys.readouterr().out
    assert "x**3" in out and "120 minute" in out
    assert "sympy-cas" in out and "pint-units" in out  # the trace table names each model
    register = ["models", "register", "--id", "cli-units", "--kind", "tool", "--owner", "bob",
                "--description", "Unit conversion, registered from the CLI", "--licence", "MIT",
                "--endpoint", "tool:units", "--tag", "units", "--price-per-call", "7"]  # fmt: skip
    assert main(register) == 0
    assert main([*register[:-2], "--price-per-call", "0.5"]) == 1
    assert "price_per_call" in capsys.readouterr().err


def test_accounts_show_balance_and_page_through_entries(prsm_app):
    with Services(prsm_app.settings) as services:
        services.ledger.open_account("gina")
        for i in range(5):
            services.ledger.mint("gina", 10**18, f"gina-{i}")
        token, _ = services.keys.create("gina")
    with httpx.Client(base_url=prsm_app.base_url, headers={"authorization": f"Bearer {token}"}) as gina:
        account = gina.get("/v1/accounts/gina").json()
        assert account["balance"] == str(5 * 10**18) and account["balance_ftns"] == "5 FTNS"
        first = gina.get("/v1/accounts/gina/entries", params={"limit": 3}).json()
        rest = gina.get(
            "/v1/accounts/gina/entries", params={"limit": 3, "before": first["next_before"]}
        ).json()
        assert len(first["data"]) == 3 and len(rest["data"]) == 2 and rest["next_before"] is None
        assert gina.get("/v1/accounts/nobody").status_code == 404
        assert gina.get("/v1/accounts/gina/entries", params={"limit": 0}).status_code == 422
        past = gina.get("/v1/accounts/gina/entries", params={"before": 10**23})  # past 64 bits: was a 500
        assert past.status_code == 422 and past.json()["error"]["field"] == "before"


def test_queries_are_paid_and_an_unfunded_account_gets_402_with_the_quote(client, prsm_app, demo_trace):
    cost = demo_trace["cost"]
    assert 0 < int(cost["charged"]) <= int(cost["quoted"])
    assert sum(int(v) for v in cost["split"].values()) == int(cost["charged"])
    lm_task = next(t for t in demo_trace["tasks"] if t["model"] == "smollm2-135m-instruct")
    assert int(lm_task["cost"]) == -(-2 * 10**15 * (lm_task["tokens_in"] + lm_task["tokens_out"]) // 1000)
    entries = client.get("/v1/accounts/alice/entries").json()["data"]
    # the hold took the quote; the capture gave back what was not charged
    assert any(e["kind"] == "hold" and int(e["amount"]) == -int(cost["quoted"]) for e in entries)
    refund = int(cost["quoted"]) - int(cost["charged"])
    assert any(e["kind"] == "capture" and int(e["amount"]) == refund for e in entries)

    before = row_counts(prsm_app.settings)
    with prsm_app.client("frank") as frank:  # a key whose account holds nothing
        refused = frank.post("/v1/query", json={"prompt": "Convert 1 km to m"})
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert error["field"] == "account" and int(error["needed"]) > 0 and error["available"] == "0"
    assert row_counts(prsm_app.settings) == before


def test_a_direct_completion_is_charged_to_the_keys_account(client, prsm_app):
    before = int(client.get("/v1/accounts/alice").json()["balance"])
    body = {
        "model": "sympy-cas",
        "user": "end-user-2",
        "messages": [{"role": "user", "content": "expand (x+1)^2"}],
    }
    data = client.post("/v1/chat/completions", json=body).json()
    assert data["choices"][0]["message"]["content"] == "x**2 + 2*x + 1"
    assert data["prsm_charge"]["charged"] == str(10**14)
    assert int(client.get("/v1/accounts/alice").json()["balance"]) == before - 10**14
    with prsm_app.client("frank") as frank:
        broke = frank.post("/v1/chat/completions", json=body)
    assert broke.status_code == 402 and broke.json()["error"]["field"] == "account"


def test_artifacts_upload_streams_into_the_store_and_record_provenance(client, prsm_app):
    import os

    from prsm.storage.cid import cid_of

    data = os.urandom(600_000)
    params = {"kind": "dataset", "licence": "CC-BY-4.0", "name": "prompts.jsonl"}
    made = client.post("/v1/artifacts", params=params, content=data)
    assert made.status_code == 201, made.text
    record = made.json()
    assert record["cid"] == cid_of(data) and record["size"] > len(data) and record["parents"] == []
    assert record["creator"] == "alice"  # the key's account
    assert client.get(f"/v1/artifacts/{record['cid']}").json() == record
    assert client.get(f"/v1/artifacts/{record['cid']}/content").content == data
    child = client.post("/v1/artifacts", params={"kind": "model", "creator": "alice", "parents": record["cid"]},
                        content=b"weights derived from it")  # fmt: skip
    assert child.status_code == 201 and child.json()["parents"] == [record["cid"]]

    assert client.get("/v1/artifacts/not-a-cid").status_code == 400
    missing = client.get(f"/v1/artifacts/{cid_of(b'never uploaded')}")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "cid"
    orphan = client.post("/v1/artifacts", params={"kind": "model", "creator": "alice",
                                                  "parents": cid_of(b"never uploaded")}, content=b"x")  # fmt: skip
    assert orphan.status_code == 422 and orphan.json()["error"]["field"] == "parents"
    bad_kind = client.post("/v1/artifacts", params={"kind": "movie", "creator": "alice"}, content=b"x")
    assert bad_kind.status_code == 422 and bad_kind.json()["error"]["field"] == "kind"
    # A form upload would store the form's framing: refused, nothing kept.
    form = client.post("/v1/artifacts", params={"kind": "dataset"}, files={"file": ("a.bin", b"bytes")})
    assert form.status_code == 415 and form.json()["error"]["field"] == "content-type"


def test_a_students_answers_are_graded_in_shadow_against_its_teacher(prsm_app):
    """Issue 14: the grader's reference call runs on the real model replica and its agreement on
    the router's real embeddings; the grade reaches the card. The student here is the teacher's
    own weights under another id, so at temperature 0 both answer alike: agreement 1."""
    import time

    from prsm.registry import DEFAULT_MODEL_ID

    with Services(prsm_app.settings) as services:
        services.ledger.open_account("local-operator", "operator")
        services.ledger.mint("local-operator", 10**17, "test-fund-grading")  # the grader's payer
    with prsm_app.client("operator") as op, prsm_app.client("erin") as erin:
        teacher = op.get(f"/v1/models/{DEFAULT_MODEL_ID}").json()
        card = {"id": "smol-copy", "kind": "transformers", "description": teacher["description"],
                "tags": teacher["tags"], "owner": "local-operator", "licence": "Apache-2.0",
                "price_per_1k_tokens": str(int(teacher["price_per_1k_tokens"]) // 10),
                "weights": teacher["weights"], "teacher": DEFAULT_MODEL_ID}  # fmt: skip
        assert op.post("/v1/models", json=card).status_code == 201
        time.sleep(1.5)  # the router re-reads the registry once a second
        try:
            response = erin.post(
                "/v1/query", json={"prompt": "In one sentence, what is a catalyst?", "route": "cost"}
            )
            assert response.status_code == 200, response.text
            trace = response.json()
            assert trace["tasks"][0]["model"] == "smol-copy"
            assert {"quality", "quality_n", "quality_term"} <= trace["tasks"][0]["ranking"][0].keys()
            deadline = time.monotonic() + 120
            while not (steps := [s for s in erin.get(f"/v1/sessions/{trace['session_id']}").json()["steps"]
                                 if s["role"] == "grader"]):  # fmt: skip
                assert time.monotonic() < deadline, "no shadow grade was written"
                time.sleep(1)
            note = json.loads(steps[0]["output"])
            assert note["reference"] == DEFAULT_MODEL_ID and note["paid_by"] == "local-operator"
            assert note.get("score", -1) > 0.99, note
            measured = op.get("/v1/models/smol-copy").json()["measured_quality"]
            assert measured["general"]["n"] == 1 and measured["general"]["mean"] > 0.66
        finally:
            op.delete("/v1/models/smol-copy")  # later tests route to the shipped model again
