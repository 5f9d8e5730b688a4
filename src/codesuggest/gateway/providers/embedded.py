"""The embedded engine (default): an offline n-gram model, CPU-bound and deterministic.

It is loaded (trained on first use, then cached in `cache_dir`, by default the user cache
directory) in the background when the gateway starts; requests wait for it up to their
timeout. Calls run on a small dedicated thread pool so CPU-bound work never blocks the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from codesuggest.common.logs import get_logger
from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.providers.base import Completion, Params, Provider, ProviderUnavailable

log = get_logger("codesuggest.gateway.providers.embedded")

MODEL_NAME = "kn6-stdlib"
_ENGINE_MODES = {"mid_line": "mid_line", "whole_line": "whole_line", "generation": "auto"}


@functools.cache
def _load_engine(cache_dir: Path | None) -> Any:
    """One engine per cache directory per process: apps created again (tests, benches, several
    gateways in one process) share the loaded tables instead of loading them again."""
    from codesuggest.gateway.embedded import EmbeddedEngine

    engine = EmbeddedEngine(cache_dir=cache_dir)
    engine.ensure_trained()
    return engine


class EmbeddedProvider(Provider):
    name = "embedded"

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        workers: int = 2,
        loader: Callable[[Path | None], Any] = _load_engine,
    ) -> None:
        self.cache_dir = cache_dir
        self.models = (MODEL_NAME,)
        self.loader = loader
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embedded")
        self.engine: Any = None
        self._loading: asyncio.Future[Any] | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None

    async def start(self) -> None:
        self._begin_loading()

    def _begin_loading(self) -> asyncio.Future[Any]:
        if self._loading is None:
            loop = asyncio.get_running_loop()
            self._loading = loop.run_in_executor(self.pool, self.loader, self.cache_dir)
            self._loading.add_done_callback(self._loaded)
        return self._loading

    def _loaded(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("embedded engine failed to load", error=repr(future.exception()))
            return
        self.engine = future.result()
        self.models = (getattr(self.engine, "model_name", MODEL_NAME),)

    async def _ready_engine(self) -> Any:
        if self.engine is not None:
            return self.engine
        try:
            return await asyncio.shield(self._begin_loading())
        except Exception as exc:
            raise ProviderUnavailable(f"embedded engine unavailable: {exc!r}") from exc

    async def aclose(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion:
        engine = await self._ready_engine()
        call = partial(
            engine.complete,
            prompt.prefix,
            prompt.suffix,
            language=prompt.language or "",
            context=[c.content for c in prompt.context],
            mode=_ENGINE_MODES[params.mode],
            max_tokens=params.max_tokens,
        )
        try:
            text = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except Exception as exc:
            raise ProviderUnavailable(f"embedded engine failed: {exc!r}") from exc
        return Completion(text)

    async def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]:
        completion = await self.complete(prompt, model, params)
        if completion.text:
            yield completion.text
