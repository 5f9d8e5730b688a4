"""Anthropic Messages API: `POST /v1/messages` with `x-api-key` and `anthropic-version`.

Streams are SSE events: `message_start`, `content_block_start`, `ping`, `content_block_delta`
(`text_delta`), `content_block_stop`, `message_delta`, `message_stop`, or `error` mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from codesuggest.gateway.prompts import Prompt, chat_messages
from codesuggest.gateway.prompts.templates import CHAT_OVERHEAD_TOKENS, CHAT_STOP
from codesuggest.gateway.providers.base import (
    Completion,
    Params,
    Provider,
    ProviderRateLimited,
    ProviderUnavailable,
)
from codesuggest.gateway.providers.codeblock import CodeBlock, code_of
from codesuggest.gateway.providers.http import Upstream, upstream_errors

API_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        models: tuple[str, ...],
        base_url: str = "https://api.anthropic.com",
        timeout: float = 30.0,
        max_connections: int = 100,
    ) -> None:
        if not models:
            raise ValueError("the anthropic provider needs at least one model name")
        self.models = models
        headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
        self.http = Upstream(base_url, headers, timeout, max_connections)

    def reserved_tokens(self, model: str) -> int:
        return CHAT_OVERHEAD_TOKENS

    @property
    def location(self) -> str:
        return self.http.base_url

    async def aclose(self) -> None:
        await self.http.aclose()

    def request(self, prompt: Prompt, model: str, params: Params, stream: bool) -> dict[str, Any]:
        system, user = chat_messages(prompt, generation=params.generation)
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": params.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "temperature": params.temperature,
            # The answer's code block ends here (only the block's code is kept).
            "stop_sequences": [CHAT_STOP, *params.stop],
        }
        if stream:
            body["stream"] = True
        return body

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        body = self.request(prompt, model, params, stream=False)
        data = await self.http.post_json("v1/messages", body)
        with upstream_errors():
            text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
            reason = "length" if data.get("stop_reason") == "max_tokens" else "stop"
            return Completion(code_of(text), reason)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        body = self.request(prompt, model, params, stream=True)
        code = CodeBlock()
        with upstream_errors():
            async with (
                self.http.stream("v1/messages", body) as response,
                aclosing(response.events()) as events,
            ):
                async for event in events:
                    if event.event == "content_block_delta":
                        delta = event.json().get("delta") or {}
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            if text := code.feed(delta["text"]):
                                yield text
                    elif event.event == "message_stop":
                        if rest := code.finish():
                            yield rest
                        return
                    elif event.event == "error":
                        error = event.json().get("error") or {}
                        message = f"{error.get('type')}: {error.get('message')}"
                        if error.get("type") == "rate_limit_error":
                            raise ProviderRateLimited(message)
                        raise ProviderUnavailable(message)
