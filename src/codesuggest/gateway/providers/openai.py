"""OpenAI-compatible servers (llama.cpp server, vLLM, LiteLLM, OpenAI), and the native FIM
APIs of llama.cpp, Mistral and Ollama, chosen by `api`:

- `completions`: `POST {base}/completions` with the FIM template of the model family, or with
  template `suffix` the code before the cursor plus the API's `suffix` field (OpenAI);
- `infill`: llama.cpp's `POST {root}/infill` with `input_prefix` / `input_suffix` /
  `input_extra`: the server places its model's FIM tokens;
- `fim`: Mistral's `POST {base}/fim/completions` (Codestral) with `prompt` + `suffix`;
- `ollama`: Ollama's `POST {root}/api/generate` with the FIM template and `raw: true`, so
  Ollama's chat template is not wrapped around it;
- `chat`: `POST {base}/chat/completions` with instructions and the code; only the code block
  of the answer is kept.

`{root}` is the base URL without a trailing `/v1`. Streams are SSE `data: {...}` chunks ending
with `data: [DONE]` (llama.cpp's `/infill` ends at a chunk with `"stop": true`), Ollama's
newline-delimited JSON objects ending at `"done": true`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from codesuggest.gateway.prompts import Prompt, chat_messages, template_for
from codesuggest.gateway.prompts.templates import (
    CHAT_OVERHEAD_TOKENS,
    CHAT_STOP,
    FimTemplate,
    TemplateError,
    comment_context,
)
from codesuggest.gateway.providers.base import Completion, Params, Provider
from codesuggest.gateway.providers.codeblock import CodeBlock
from codesuggest.gateway.providers.http import Upstream, UpstreamStream, upstream_errors

Api = Literal["completions", "chat", "infill", "fim", "ollama"]
MAX_API_STOPS = 4  # the OpenAI API refuses more than four stop sequences
_TEMPLATED: tuple[Api, ...] = ("completions", "ollama")


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
        time_budget: float | None = None,
    ) -> None:
        if not models:
            raise ValueError("the openai provider needs at least one model name")
        self.models = models
        self.time_budget = time_budget
        self.api = api
        self.fim_template = fim_template
        if api == "ollama" and fim_template == "suffix":
            raise ValueError("the ollama API takes a rendered prompt: choose a FIM template")
        # Every served model's template is known at start-up, or the gateway refuses to start.
        self.templates: dict[str, FimTemplate | None] = {}
        for model in models:
            try:
                self.templates[model] = (
                    template_for(model, fim_template) if api in _TEMPLATED else None
                )
            except TemplateError as exc:
                raise ValueError(f"openai provider: {exc}") from exc
        # Asked on every request: computed once.
        self._markers = {m: t.markers if t else () for m, t in self.templates.items()}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if api in ("infill", "ollama"):
            base_url = base_url.rstrip("/").removesuffix("/v1")
        self.http = Upstream(base_url, headers, timeout, max_connections)

    def _template(self, model: str) -> FimTemplate | None:
        return self.templates[model]  # the registry only lets served model names through

    def markers(self, model: str) -> tuple[str, ...]:
        return self._markers[model]

    def reserved_tokens(self, model: str) -> int:
        if self.api == "chat":
            return CHAT_OVERHEAD_TOKENS
        template = self._template(model)
        return template.overhead_tokens if template else 8

    @property
    def location(self) -> str:
        return self.http.base_url

    async def aclose(self) -> None:
        await self.http.aclose()

    def request(self, prompt: Prompt, model: str, params: Params, stream: bool) -> tuple[str, Any]:
        """The (path, JSON body) of the upstream call."""
        if self.api == "infill":
            return "infill", self._infill(prompt, params, stream)
        if self.api == "ollama":
            return "api/generate", self._ollama(prompt, model, params, stream)
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
            body["stop"] = [CHAT_STOP]
            return "chat/completions", body
        template = self._template(model)
        if template is not None:
            body["prompt"] = template.render(prompt)
            stops = params.stops(*template.stop, limit=MAX_API_STOPS)
        else:
            body["prompt"] = comment_context(prompt) + prompt.prefix
            body["suffix"] = prompt.suffix
            stops = params.stops(limit=MAX_API_STOPS)
        if stops:
            body["stop"] = stops
        return ("fim/completions" if self.api == "fim" else "completions"), body

    def _infill(self, prompt: Prompt, params: Params, stream: bool) -> dict[str, Any]:
        """llama.cpp's `/infill`: it renders the model's FIM format and repo-level context."""
        body: dict[str, Any] = {
            "input_prefix": prompt.prefix,
            "input_suffix": prompt.suffix,
            "input_extra": [{"filename": c.name, "text": c.content} for c in prompt.context],
            "prompt": "",
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "cache_prompt": True,
            "stream": stream,
        }
        if stops := params.stops():
            body["stop"] = stops
        return body

    def _ollama(self, prompt: Prompt, model: str, params: Params, stream: bool) -> dict[str, Any]:
        template = self._template(model)
        assert template is not None  # refused at start-up
        return {
            "model": model,
            "prompt": template.render(prompt),
            "raw": True,  # the FIM prompt as is, without the model's chat template
            "stream": stream,
            "options": {
                "num_predict": params.max_tokens,
                "temperature": params.temperature,
                "stop": params.stops(*template.stop),
            },
        }

    def _text(self, data: dict[str, Any]) -> str:
        if self.api == "infill":
            return str(data.get("content") or "")
        if self.api == "ollama":
            return str(data.get("response") or "")
        choices = data.get("choices") or []
        if not choices:
            return ""
        if self.api in ("chat", "fim"):
            part = choices[0].get("delta") or {}
            return part.get("content") or ""
        return choices[0].get("text") or ""

    def _finish(self, data: dict[str, Any]) -> str | None:
        """The finish reason ("length" or "stop"), or None while the generation goes on."""
        if self.api == "infill":
            ended, reason = data.get("stop"), data.get("stop_type")
            return None if not ended else ("length" if reason == "limit" else "stop")
        if self.api == "ollama":
            ended, reason = data.get("done"), data.get("done_reason")
            return None if not ended else ("length" if reason == "length" else "stop")
        reason = ((data.get("choices") or [{}])[0]).get("finish_reason")
        return None if not reason else ("length" if reason == "length" else "stop")

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        """Streamed from the server too: llama.cpp's server stops a generation whose client
        left only when it is streaming, so a cancelled call frees the server at once."""
        parts: list[str] = []
        reason = "length"
        async with aclosing(self._chunks(prompt, model, params)) as chunks:
            async for text, finish in chunks:
                parts.append(text)
                reason = finish or reason
        return Completion("".join(parts), reason)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        async with aclosing(self._chunks(prompt, model, params)) as chunks:
            async for text, _ in chunks:
                if text:
                    yield text

    async def _chunks(
        self, prompt: Prompt, model: str, params: Params
    ) -> AsyncGenerator[tuple[str, str | None]]:
        """(text, finish reason once known) per upstream chunk; with a time budget, the stream
        is closed (and the server stops) at the first chunk past it, finishing on "length"."""
        path, body = self.request(prompt, model, params, stream=True)
        code = CodeBlock() if self.api == "chat" else None
        budget = self.time_budget
        deadline = time.monotonic() + budget if budget is not None else None
        with upstream_errors():
            async with self.http.stream(path, body) as response:
                async with aclosing(self._events(response)) as events:
                    async for data in events:
                        text = self._text(data)
                        if code is not None:
                            text = code.feed(text)
                        if deadline is not None and time.monotonic() > deadline:
                            yield text, self._finish(data) or "length"
                            break
                        yield text, self._finish(data)
                if code is not None:
                    yield code.finish(), None

    async def _events(self, response: UpstreamStream) -> AsyncGenerator[dict[str, Any]]:
        """The stream's JSON objects, until its end marker. The inner generators are closed
        here, not left to the garbage collector (which closes each in a task of its own)."""
        if self.api == "ollama":
            async with aclosing(response.lines()) as lines:
                async for line in lines:
                    if line.strip():
                        data = json.loads(line)
                        if data.get("error"):
                            raise ValueError(f"ollama: {data['error']}")
                        yield data
                        if data.get("done"):
                            return
            return
        async with aclosing(response.events()) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    return
                data = event.json()
                yield data
                if self.api == "infill" and data.get("stop"):
                    return
