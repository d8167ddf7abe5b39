"""OpenAI-compatible remote endpoints (vLLM, llama.cpp server, hosted APIs, another PRSM node)."""

from __future__ import annotations

import os

import httpx

from prsm.errors import ModelCallFailed
from prsm.types import ModelCall, ModelOutput

# A key for a remote endpoint comes from the environment, never from the registry or the
# database: PRSM_REMOTE_API_KEY, sent as a bearer token when set.
API_KEY_ENV = "PRSM_REMOTE_API_KEY"


class RemoteChatBackend:
    def __init__(self, endpoint: str, remote_model: str, timeout_s: float = 120.0):
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.remote_model = remote_model
        headers = {}
        if key := os.environ.get(API_KEY_ENV):
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers)

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
            response = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ModelCallFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise ModelCallFailed(f"{self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelCallFailed(f"{self.url} sent no chat completion: {exc}") from exc
        return ModelOutput(
            text=text,
            tokens_in=int(usage.get("prompt_tokens", 0)),
            tokens_out=int(usage.get("completion_tokens", 0)),
        )
