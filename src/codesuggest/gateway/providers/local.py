"""A local GGUF model run in process by llama.cpp through `xllamacpp` (extra `codesuggest[local]`).

UNTESTED HERE: xllamacpp is not installed and no weights are available on the build machine.
Written against xllamacpp's documented API: `CommonParams` (`model.path`, `n_ctx`,
`n_parallel`, `cpuparams.n_threads`), `Server(params)` and `Server.handle_completions(body,
callback=None)`, which takes an OpenAI `/v1/completions` body and returns its JSON answer, or,
with `"stream": true`, calls `callback(chunk)` per chunk and stops when it returns True.
The prompt uses the `<|fim_prefix|>...<|fim_suffix|>...<|fim_middle|>` template and
`cache_prompt`, and the builder's stable prefix window lets llama.cpp reuse its KV cache.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.prompts.templates import TEMPLATES
from codesuggest.gateway.providers.base import Completion, Params, Provider, ProviderUnavailable

MISSING_EXTRA = (
    "the 'local' provider needs xllamacpp: install it with pip install 'codesuggest[local]'"
)
_END = object()


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
        template: str = "qwen",
    ) -> None:
        self.model_path = model_path
        self.models = (model_name or model_path.stem,)
        self.n_ctx = n_ctx
        self.threads = threads
        self.parallel = parallel
        self.template = TEMPLATES[template]
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="local-llm")
        self.server: Any = None

    def markers(self, model: str) -> tuple[str, ...]:
        return self.template.markers

    def reserved_tokens(self, model: str) -> int:
        return self.template.overhead_tokens

    async def start(self) -> None:
        xlc = import_xllamacpp()  # fail at start-up, with the fix in the message
        if not self.model_path.is_file():
            raise RuntimeError(f"local model file not found: {self.model_path}")
        self.server = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._make_server, xlc
        )

    def _make_server(self, xlc: Any) -> Any:
        params = xlc.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        if self.threads > 0:
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
        return xlc.Server(params)

    async def aclose(self) -> None:
        self.server = None  # the C++ server stops when the object is freed
        self.pool.shutdown(wait=False, cancel_futures=True)

    def request(self, prompt: Prompt, params: Params, stream: bool) -> dict[str, Any]:
        return {
            "prompt": self.template.render(prompt),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stop": list(dict.fromkeys(params.stop + self.template.stop)),
            "cache_prompt": True,
            "stream": stream,
        }

    def _server(self) -> Any:
        if self.server is None:
            raise ProviderUnavailable("local model is not loaded")
        return self.server

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        server = self._server()
        body = self.request(prompt, params, stream=False)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.pool, server.handle_completions, body)
        if not isinstance(result, dict) or "error" in result or "choices" not in result:
            raise ProviderUnavailable(f"local model failed: {str(result)[:300]}")
        choice = result["choices"][0]
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(choice.get("text") or "", reason)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        server = self._server()
        body = self.request(prompt, params, stream=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return cancelled.is_set()  # True tells llama.cpp to stop generating

        def run() -> None:
            try:
                server.handle_completions(body, on_chunk)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(self.pool, run)
        try:
            while (chunk := await queue.get()) is not _END:
                if "error" in chunk or "choices" not in chunk:
                    raise ProviderUnavailable(f"local model failed: {str(chunk)[:300]}")
                text = (chunk["choices"] or [{}])[0].get("text") or ""
                if text:
                    yield text
        finally:
            cancelled.set()
            await asyncio.shield(worker)
