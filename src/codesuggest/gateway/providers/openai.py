"""OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LiteLLM, OpenAI itself).

`api="completions"`: `POST {base_url}/completions` with a FIM template for the model family
(codellama, starcoder, qwen, codegemma, deepseek) or, when none applies, the API's `suffix`
field. `api="chat"`: `POST {base_url}/chat/completions` with an instruction and the code
around the cursor. Streams are SSE `data: {...}` chunks ending with `data: [DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from httpx_sse import EventSource

from codesuggest.gateway.prompts import Prompt, chat_messages, template_for
from codesuggest.gateway.prompts.templates import CHAT_OVERHEAD_TOKENS, comment_context
from codesuggest.gateway.providers.base import Completion, Params, Provider
from codesuggest.gateway.providers.http import check_status, pooled_client, upstream_errors

Api = Literal["completions", "chat"]
_MAX_API_STOPS = 4  # the OpenAI API refuses more than four stop sequences


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        models: tuple[str, ...],
        api_key: str | None = None,
        api: Api = "completions",
        fim_template: str = "auto",
        timeout: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        if not models:
            raise ValueError("the openai provider needs at least one model name")
        self.models = models
        self.api = api
        self.fim_template = fim_template
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = pooled_client(base_url, headers, timeout, max_connections)

    def markers(self, model: str) -> tuple[str, ...]:
        template = template_for(model, self.fim_template) if self.api == "completions" else None
        return template.markers if template else ()

    def reserved_tokens(self, model: str) -> int:
        if self.api == "chat":
            return CHAT_OVERHEAD_TOKENS
        template = template_for(model, self.fim_template)
        return template.overhead_tokens if template else 8

    async def aclose(self) -> None:
        await self.http.aclose()

    def request(self, prompt: Prompt, model: str, params: Params, stream: bool) -> tuple[str, Any]:
        """The (path, JSON body) of the upstream call."""
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": stream,
        }
        if self.api == "chat":
            system, user = chat_messages(prompt, generation=params.generation)
            body["messages"] = [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ]
            return "chat/completions", body
        template = template_for(model, self.fim_template)
        if template is not None:
            body["prompt"] = template.render(prompt)
            stops = list(dict.fromkeys(params.stop + template.stop))
        else:
            body["prompt"] = comment_context(prompt) + prompt.prefix
            body["suffix"] = prompt.suffix
            stops = list(params.stop)[:_MAX_API_STOPS]
        if stops:
            body["stop"] = stops
        return "completions", body

    def _text(self, choice: dict[str, Any], streaming: bool) -> str:
        if self.api == "chat":
            part = choice.get("delta" if streaming else "message") or {}
            return part.get("content") or ""
        return choice.get("text") or ""

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        path, body = self.request(prompt, model, params, stream=False)
        with upstream_errors():
            response = await self.http.post(path, json=body)
            check_status(response)
            choice = response.json()["choices"][0]
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            return Completion(self._text(choice, streaming=False), reason)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        path, body = self.request(prompt, model, params, stream=True)
        with upstream_errors():
            async with self.http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check_status(response)
                async for event in EventSource(response).aiter_sse():
                    if event.data.strip() == "[DONE]":
                        return
                    choices = event.json().get("choices") or []
                    text = self._text(choices[0], streaming=True) if choices else ""
                    if text:
                        yield text
