"""OpenAI-compatible remote endpoints (vLLM, llama.cpp server, hosted APIs, another PRSM node).

Every call goes through the egress policy (prsm/egress.py): a checked destination, the
connection made to the checked address, no redirects, a fixed path, a total deadline and a cap
on the response's size. The only credential sent is the card's own (its owner's secret, sealed in
the database: prsm/sealing.py), and only to that card's endpoint.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from prsm.egress import EgressPolicy
from prsm.errors import InvalidInput, ModelCallFailed
from prsm.types import ModelCall, ModelOutput

PATH = "/chat/completions"


class RemoteChatBackend:
    def __init__(self, endpoint: str, remote_model: str, policy: EgressPolicy, credential: str | None = None):
        try:
            self.endpoint = policy.check(endpoint)
        except InvalidInput as exc:  # the card's fault, not the caller's: a failed model call
            raise ModelCallFailed(exc.message, "endpoint") from None
        self.name = f"{self.endpoint.scheme}://{self.endpoint.host_header}{self.endpoint.path}{PATH}"
        self.remote_model = remote_model
        self.policy = policy
        self._headers = {
            "Host": self.endpoint.host_header,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        if credential:
            self._headers["Authorization"] = f"Bearer {credential}"
        # No client-wide redirects, proxies from the environment or cookies: each request is
        # built here, to the checked address.
        self._client = httpx.AsyncClient(
            timeout=policy.deadline_s, follow_redirects=False, trust_env=False, cookies=None
        )

    async def run(self, call: ModelCall) -> ModelOutput:
        body = {
            "model": self.remote_model,
            "messages": list(call.messages),
            "max_tokens": call.max_new_tokens,
            "temperature": 0,
        }
        if call.response_format:  # vLLM and hosted APIs decode under the schema themselves
            body["response_format"] = call.response_format
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                status, content = await self._post(json.dumps(body).encode())
        except TimeoutError:
            raise ModelCallFailed(f"{self.name} did not answer within {self.policy.deadline_s:g} s") from None
        if 300 <= status < 400:
            raise ModelCallFailed(
                f"{self.name} answered a redirect ({status}): PRSM does not follow redirects"
            )
        if status != 200:
            raise ModelCallFailed(f"{self.name} answered {status}: {content[:300].decode(errors='replace')}")
        try:
            data = json.loads(content)
            text = data["choices"][0]["message"]["content"] or ""
            finish = "length" if data["choices"][0].get("finish_reason") == "length" else "stop"
            usage = data.get("usage") or {}
            tokens_in, tokens_out = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            if not isinstance(text, str) or tokens_in < 0 or tokens_out < 0:
                raise TypeError("content is not text, or token counts are negative")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelCallFailed(f"{self.name} sent no chat completion: {exc}") from None
        return ModelOutput(text=text, tokens_in=tokens_in, tokens_out=tokens_out, finish_reason=finish)

    async def _post(self, content: bytes, path: str = PATH, headers: dict | None = None) -> tuple[int, bytes]:
        """POST `content` (JSON) to the checked address's `path`: (status, the answer's bytes)."""
        address = await self.policy.resolve(self.endpoint)
        request = self._client.build_request(
            "POST",
            self.endpoint.url_to(address, path),
            content=content,
            headers=self._headers | {"Content-Type": "application/json"} | (headers or {}),
            # TLS: SNI and the certificate check use the host name, not the address.
            extensions={"sni_hostname": self.endpoint.host} if self.endpoint.scheme == "https" else {},
        )
        try:
            response = await self._client.send(request, stream=True)
            try:
                chunks, size = [], 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > self.policy.max_response_bytes:
                        raise ModelCallFailed(
                            f"{self.name} sent more than {self.policy.max_response_bytes} bytes"
                        )
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise ModelCallFailed(f"{self.name}: {type(exc).__name__}: {exc}") from None
        content = b"".join(chunks)
        if response.headers.get("content-encoding", "identity") not in ("identity", ""):
            raise ModelCallFailed(f"{self.name} sent a compressed body; PRSM asks for none")
        return response.status_code, content
