"""A local GGUF model run in process by llama.cpp through `xllamacpp` (extra `codesuggest[local]`).

`xllamacpp.Server` loads the model in this process and answers `handle_completions(body,
callback)` (an OpenAI `/v1/completions` body; with `"stream": true` the callback gets each
chunk and stops the generation by returning True). Every call streams internally, so a call
whose client left, that timed out or that used up `time_budget` stops at its next token.

The engine also always starts llama.cpp's HTTP listener. It is bound to a Unix socket in a
private (0700) directory and requires a random key that never leaves this object: no TCP port
is opened, and only this provider talks to it, for `/tokenize`, so the prompt budget is counted
with the model's own tokenizer and the FIM template is checked against its vocabulary.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from codesuggest.common.logs import get_logger
from codesuggest.gateway.prompts import Prompt, PromptBudget
from codesuggest.gateway.prompts.builder import shrink
from codesuggest.gateway.prompts.templates import (
    TEMPLATES,
    FimTemplate,
    TemplateError,
    vocabulary_template,
)
from codesuggest.gateway.providers.base import Completion, Params, Provider, ProviderUnavailable

log = get_logger("codesuggest.gateway.providers.local")

MISSING_EXTRA = (
    "the 'local' provider needs xllamacpp: install it with pip install 'codesuggest[local]'"
)
_END = object()
_FIT_ATTEMPTS = 4


def import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise RuntimeError(MISSING_EXTRA) from exc
    return xllamacpp


class LocalProvider(Provider):
    name = "local"

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str | None = None,
        n_ctx: int = 4096,
        threads: int = 0,
        parallel: int = 2,
        template: str = "auto",
        time_budget: float = 4.0,
        budget: PromptBudget | None = None,
    ) -> None:
        self.model_path = model_path
        self.models = (model_name or model_path.stem,)
        self.n_ctx = n_ctx
        self.threads = threads
        self.parallel = parallel
        self.configured_template = template
        self.time_budget = time_budget
        self.budget = budget or PromptBudget()
        self.template: FimTemplate | None = None
        self.slot_tokens = n_ctx // parallel
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="local-llm")
        self.server: Any = None
        self.tokenizer: httpx.AsyncClient | None = None
        self._socket_dir: str | None = None

    def markers(self, model: str) -> tuple[str, ...]:
        return self.template.markers if self.template else ()

    def reserved_tokens(self, model: str) -> int:
        return self.template.overhead_tokens if self.template else 8

    @property
    def ready(self) -> bool:
        return self.server is not None and self.template is not None

    async def start(self) -> None:
        xlc = import_xllamacpp()  # fail at start-up, with the fix in the message
        if not self.model_path.is_file():
            raise RuntimeError(f"local model file not found: {self.model_path}")
        self._socket_dir = tempfile.mkdtemp(prefix="codesuggest-llama-")  # mode 0700
        socket = str(Path(self._socket_dir) / "engine.sock")
        key = secrets.token_urlsafe(32)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            self.server = await loop.run_in_executor(self.pool, self._make_server, xlc, socket, key)
            self.tokenizer = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=socket),
                base_url="http://engine",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30.0,
            )
            props = await self._call("props", method="GET")
            self.slot_tokens = int(props["default_generation_settings"]["n_ctx"])
            self.template = await self._choose_template()
        except BaseException:
            await self.aclose()
            raise
        log.info(
            "local model loaded",
            model=self.default_model,
            template=self.template.name,
            slot_size=self.slot_tokens,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _make_server(self, xlc: Any, socket: str, key: str) -> Any:
        params = xlc.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        params.hostnames = [socket]  # a path ending in .sock: a Unix socket, no TCP port
        params.api_keys = [key]
        params.cors_origins = ""
        params.ui = False
        params.endpoint_metrics = True  # read in process: Server.handle_metrics()
        params.endpoint_slots = False
        params.verbosity = -1
        if self.threads > 0:
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
        return xlc.Server(params)

    async def _call(self, path: str, method: str = "POST", **body: Any) -> Any:
        if self.tokenizer is None:
            raise ProviderUnavailable("local model is not loaded")
        try:
            response = await self.tokenizer.request(method, path, json=body or None)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"local engine failed: {exc!r}") from exc

    async def _tokens(self, text: str, *, special: bool) -> list[Any]:
        answer = await self._call(
            "tokenize", content=text, add_special=special, parse_special=True, with_pieces=False
        )
        return list(answer["tokens"])

    async def count(self, text: str) -> int:
        """Tokens the engine makes of `text` as a prompt (BOS and special tokens included)."""
        return len(await self._tokens(text, special=True))

    async def _choose_template(self) -> FimTemplate:
        wanted = {m for t in TEMPLATES.values() for m in (*t.special_tokens, *t.markers)}
        single = {m for m in wanted if len(await self._tokens(m, special=False)) == 1}
        model = f"{self.default_model} ({self.model_path})"
        try:
            return vocabulary_template(model, self.configured_template, single.__contains__)
        except TemplateError as exc:
            raise RuntimeError(f"local provider: {exc}") from exc

    async def aclose(self) -> None:
        if self.tokenizer is not None:
            await self.tokenizer.aclose()
            self.tokenizer = None
        self.server = None  # the engine stops (and unbinds its socket) when the object is freed
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def output_tokens(self, params: Params) -> int:
        """What a slot can give the output: the request's max_tokens, at most half a slot."""
        return max(1, min(params.max_tokens, self.slot_tokens // 2))

    async def render(self, prompt: Prompt, params: Params) -> str:
        """The rendered prompt, cut (by the engine's own token count) so that it and the output
        fit in one slot's context."""
        template = self._template()
        limit = self.slot_tokens - self.output_tokens(params) - 4
        text = template.render(prompt)
        tokens = await self.count(text)
        for _ in range(_FIT_ATTEMPTS):
            if tokens <= limit:
                return text
            ratio = len(text) / tokens * min(0.95, limit / tokens)
            budget = replace(self.budget, max_tokens=limit, chars_per_token=max(ratio, 0.5))
            prompt = shrink(prompt, budget, reserved_tokens=template.overhead_tokens)
            text = template.render(prompt)
            tokens = await self.count(text)
        if tokens <= limit:
            return text
        raise ProviderUnavailable(f"prompt of {tokens} tokens does not fit a {limit}-token slot")

    def _template(self) -> FimTemplate:
        if self.server is None or self.template is None:
            raise ProviderUnavailable("local model is not loaded")
        return self.template

    def request(self, text: str, params: Params) -> dict[str, Any]:
        template = self._template()
        return {
            "prompt": text,
            "max_tokens": self.output_tokens(params),
            "temperature": params.temperature,
            "stop": params.stops(*template.stop),
            "cache_prompt": True,
            "stream": True,
        }

    async def _generate(self, prompt: Prompt, params: Params) -> AsyncGenerator[tuple[str, str]]:
        """(text, finish_reason) chunks; the engine stops at its next token once this generator
        is closed or cancelled, or `time_budget` seconds after the call started."""
        server = self.server
        body = self.request(await self.render(prompt, params), params)
        if server is None:
            raise ProviderUnavailable("local model is not loaded")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        abandoned = threading.Event()
        deadline = time.monotonic() + self.time_budget

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return abandoned.is_set() or time.monotonic() > deadline  # True stops the engine

        def run() -> None:
            try:
                server.handle_completions(body, on_chunk)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting side
                loop.call_soon_threadsafe(queue.put_nowait, {"error": repr(exc)})
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        loop.run_in_executor(self.pool, run)
        finish = "length"
        try:
            while (chunk := await queue.get()) is not _END:
                if "error" in chunk or "choices" not in chunk:
                    raise ProviderUnavailable(f"local model failed: {str(chunk)[:300]}")
                choice = (chunk["choices"] or [{}])[0]
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
                yield choice.get("text") or "", finish
        finally:
            abandoned.set()  # the worker ends at the engine's next token; nobody waits for it

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        parts: list[str] = []
        reason = "length"
        async with aclosing(self._generate(prompt, params)) as chunks:
            async for text, finish in chunks:
                parts.append(text)
                reason = finish
        return Completion("".join(parts), reason)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        async with aclosing(self._generate(prompt, params)) as chunks:
            async for text, _ in chunks:
                if text:
                    yield text
