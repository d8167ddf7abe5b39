"""Egress control for remote cards: where PRSM may send a request on a card's behalf, with what,
and for how long. A real HTTP server on loopback plays the remote endpoint (allowed by the
operator's list, as a local vLLM would be)."""

import asyncio
import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prsm.backends.remote import RemoteChatBackend
from prsm.egress import EgressPolicy, Rule, is_public, parse_endpoint
from prsm.errors import InvalidInput, ModelCallFailed
from prsm.sealing import Sealer, context_of
from prsm.types import ModelCall

SEEN: list[dict] = []


class Endpoint(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SEEN.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/slow"):
            time.sleep(3)
        size = 8 * 1024**2 if self.path.startswith("/big") else 0
        answer = json.dumps(
            {
                "choices": [
                    {"message": {"content": "auth=" + self.headers.get("Authorization", "none") + "x" * size}}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that went away (the size cap)
        pass


@pytest.fixture(scope="module")
def server():
    httpd = Server(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def call(backend) -> str:
    return asyncio.run(backend.run(ModelCall(({"role": "user", "content": "hi"},), 8))).text


def allowing(port: int, **limits) -> EgressPolicy:
    return EgressPolicy.from_entries([f"127.0.0.1:{port}", f"localhost:{port}"], **limits)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8265/api/jobs",  # the Ray dashboard
        "https://127.0.0.1:5001/api/v0",  # the IPFS admin API, over https too
        "https://localhost/v1",  # a name for loopback
        "https://2130706433/v1",  # 127.0.0.1 as one decimal number
        "https://0x7f000001/v1",
        "https://0.0.0.0/v1",
        "https://[::1]/v1",
        "https://[::ffff:127.0.0.1]/v1",  # IPv4-mapped
        "https://[64:ff9b::7f00:1]/v1",  # NAT64 of loopback
        "https://169.254.169.254/latest",  # cloud metadata
        "https://[fd00:ec2::254]/v1",
        "https://10.1.2.3/v1",
        "https://192.168.0.1/v1",
        "https://172.16.5.4/v1",
        "https://100.64.0.1/v1",  # carrier-grade NAT
        "https://224.0.0.1/v1",  # multicast
        "https://[fe80::1]/v1",
        "https://240.0.0.1/v1",  # reserved
    ],
)
def test_a_card_cannot_make_prsm_call_a_local_or_private_address(url):
    policy = EgressPolicy()
    with pytest.raises(
        (InvalidInput, ModelCallFailed), match="not on the public internet|http|private-network"
    ):
        asyncio.run(policy.vet(url))
    with pytest.raises(
        ModelCallFailed, match="not on the public internet|http|private-network"
    ):  # the card's fault
        call(RemoteChatBackend(url, "m", policy))


@pytest.mark.parametrize(
    "url,words",
    [
        ("http://127.0.0.1:1234/anything#", "fragment"),
        ("https://example.com/v1?x=1", "query"),
        ("https://user:pw@example.com/v1", "user info"),
        ("https://example.com@127.0.0.1/v1", "user info"),
        ("https://example.com\\@127.0.0.1/v1", "backslash"),
        ("https://exa mple.com/v1", "white space"),
        ("https://example.com/v1/../admin", "plain"),
        ("https://example.com/%2e%2e/admin", "plain"),
        ("file:///etc/passwd", "http"),
        ("gopher://example.com/", "http"),
        ("https:///v1", "no host"),
        ("https://example.com:99999/v1", "URL"),
        ("https://exämple.com/v1", "ASCII"),
    ],
)
def test_an_endpoint_in_a_bad_form_is_refused_naming_the_field(url, words):
    with pytest.raises(InvalidInput, match=words) as info:
        parse_endpoint(url)
    assert info.value.field == "endpoint"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "api.localhost",
        "metadata.google.internal",
        "metadata",
        "printer.local",
        "router.home.arpa",
        "LOCALHOST.",
    ],  # fmt: skip
)
def test_a_private_network_name_is_refused_before_any_resolver_is_asked(host):
    """What such a name resolves to here says nothing of what it resolves to at the next call."""
    with pytest.raises(InvalidInput, match="private-network name") as info:
        EgressPolicy().check(f"https://{host}/v1")
    assert info.value.field == "endpoint"
    allowed = EgressPolicy.from_entries([f"{host.lower().rstrip('.')}:8000"])
    assert allowed.check(f"https://{host}:8000/v1").port == 8000  # the operator's allowlist still rules


def test_plain_http_to_a_public_address_needs_the_allowlist():
    with pytest.raises(InvalidInput, match="plain http"):
        EgressPolicy().check("http://93.184.216.34/v1")
    with pytest.raises(InvalidInput, match="plain http"):
        EgressPolicy().check("http://example.com/v1")
    assert EgressPolicy().check("https://93.184.216.34/v1").port == 443
    assert EgressPolicy.from_entries(["example.com"]).check("http://example.com/v1").host == "example.com"


def test_allowlist_entries_and_public_addresses():
    import ipaddress

    rules = [
        Rule.parse(e) for e in ("10.0.0.0/8", "127.0.0.1:8001", "[::1]:8001", "vllm.internal:8000", "::1")
    ]
    assert [r.port for r in rules] == [None, 8001, 8001, 8000, None]
    assert rules[3].host == "vllm.internal" and str(rules[0].network) == "10.0.0.0/8"
    for bad in ("127.0.0.1:0", "host:port", "a/b/c", ""):
        with pytest.raises(ValueError):
            Rule.parse(bad)
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert not is_public(ipaddress.ip_address("::ffff:10.0.0.1"))


def test_an_allowed_local_endpoint_gets_the_fixed_path_and_the_cards_own_credential(server):
    SEEN.clear()
    backend = RemoteChatBackend(
        f"http://localhost:{server}/v1", "m", allowing(server), credential="sk-card-1"
    )
    assert call(backend) == "auth=Bearer sk-card-1"
    assert SEEN[-1]["path"] == "/v1/chat/completions"
    assert SEEN[-1]["headers"]["Host"] == f"localhost:{server}"
    assert call(RemoteChatBackend(f"http://127.0.0.1:{server}/v1", "m", allowing(server))) == "auth=none"
    # another port on the same host is not allowed
    with pytest.raises(ModelCallFailed, match="public internet"):
        call(RemoteChatBackend(f"http://127.0.0.1:{server + 1}/v1", "m", allowing(server)))


def test_no_global_key_goes_to_any_endpoint(server, monkeypatch):
    monkeypatch.setenv("PRSM_REMOTE_API_KEY", "sk-global")
    assert call(RemoteChatBackend(f"http://127.0.0.1:{server}/v1", "m", allowing(server))) == "auth=none"


def test_redirects_are_not_followed(server):
    SEEN.clear()
    with pytest.raises(ModelCallFailed, match="redirect"):
        call(RemoteChatBackend(f"http://127.0.0.1:{server}/redirect", "m", allowing(server)))
    assert len(SEEN) == 1


def test_a_response_past_the_size_cap_is_refused(server):
    policy = allowing(server, max_response_bytes=1024**2)
    with pytest.raises(ModelCallFailed, match="more than 1048576 bytes"):
        call(RemoteChatBackend(f"http://127.0.0.1:{server}/big", "m", policy))


def test_a_call_has_a_total_deadline(server):
    started = time.monotonic()
    with pytest.raises(ModelCallFailed, match="within 1 s"):
        call(RemoteChatBackend(f"http://127.0.0.1:{server}/slow", "m", allowing(server, deadline_s=1.0)))
    assert time.monotonic() - started < 2


def test_a_name_that_resolves_to_one_private_address_among_public_ones_is_refused(monkeypatch):
    """The check is on every address the name resolves to, at the call (no rebinding window)."""
    import socket

    async def resolver(self, host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("93.184.216.34", "127.0.0.1")
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", resolver)
    policy = EgressPolicy()
    endpoint = policy.check("https://rebind.example/v1")
    with pytest.raises(ModelCallFailed, match="127.0.0.1"):
        asyncio.run(policy.resolve(endpoint))
    with pytest.raises(InvalidInput, match="127.0.0.1"):
        asyncio.run(policy.vet("https://rebind.example/v1"))


def test_credentials_are_sealed_bound_to_card_and_endpoint(tmp_path):
    sealer = Sealer.from_file(tmp_path / "secret.key")
    assert stat.S_IMODE(os.stat(tmp_path / "secret.key").st_mode) == 0o600
    assert (
        Sealer.from_file(tmp_path / "secret.key").open(
            sealer.seal("sk-1", context_of("m", "https://a/v1")), context_of("m", "https://a/v1")
        )
        == "sk-1"
    )
    sealed = sealer.seal("sk-1", context_of("m", "https://a/v1"))
    assert b"sk-1" not in sealed
    for other in (context_of("m2", "https://a/v1"), context_of("m", "https://evil/v1")):
        with pytest.raises(ModelCallFailed, match="does not open"):
            sealer.open(sealed, other)
    with pytest.raises(ModelCallFailed, match="does not open"):
        Sealer(os.urandom(32)).open(sealed, context_of("m", "https://a/v1"))
