"""The embedded engine behind the provider interface, and the local provider's missing extra."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.providers import Params, ProviderUnavailable, build_registry
from codesuggest.gateway.providers.embedded import EmbeddedProvider
from codesuggest.gateway.providers.local import MISSING_EXTRA, LocalProvider
from codesuggest.gateway.providers.registry import ProviderRegistry

PROMPT = Prompt(
    file_name="main.py",
    language="python",
    line_comment="#",
    prefix="import os\n\n\ndef main():\n    path = os.path.",
    suffix="\n",
)
PARAMS = Params(max_tokens=16, temperature=0.0, mode="mid_line")


async def test_embedded_engine_completes_through_the_provider():
    provider = EmbeddedProvider()
    await provider.start()
    first = await provider.complete(PROMPT, "kn6-stdlib", PARAMS)
    again = await provider.complete(PROMPT, "kn6-stdlib", PARAMS)
    streamed = [p async for p in provider.stream(PROMPT, "kn6-stdlib", PARAMS)]
    await provider.aclose()
    assert first.text and first.text == again.text  # deterministic
    assert streamed == [first.text]
    assert provider.models == ("kn6-stdlib",)


async def test_embedded_engine_that_fails_to_load_is_unavailable():
    def broken(_cache_dir):  # type: ignore[no-untyped-def]
        raise OSError("cache directory is not writable")

    provider = EmbeddedProvider(loader=broken)
    await provider.start()
    with pytest.raises(ProviderUnavailable, match="not writable"):
        await provider.complete(PROMPT, "kn6-stdlib", PARAMS)
    await provider.aclose()


async def test_a_loading_engine_keeps_the_registry_not_ready():
    release = threading.Event()
    engine = object()

    def slow(_cache_dir):  # type: ignore[no-untyped-def]
        release.wait(10)
        return engine

    provider = EmbeddedProvider(loader=slow)
    registry = ProviderRegistry([provider], "embedded")
    await provider.start()
    try:
        assert not provider.ready
        assert registry.loading() == ["embedded"]
        release.set()
        assert await provider._ready_engine() is engine
        assert provider.ready
        assert registry.loading() == []
    finally:
        await provider.aclose()


async def test_local_provider_names_the_missing_extra(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what `import` meets without the extra
    model = tmp_path / "qwen2.5-coder-0.5b-q8_0.gguf"
    model.write_bytes(b"GGUF")
    provider = LocalProvider(model)
    assert provider.models == ("qwen2.5-coder-0.5b-q8_0",)
    with pytest.raises(RuntimeError, match=r"pip install 'codesuggest\[local\]'") as caught:
        await provider.start()
    assert str(caught.value) == MISSING_EXTRA
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, provider.default_model, PARAMS)


def test_registry_only_serves_configured_providers():
    registry = build_registry(CompletionsSettings())
    assert set(registry.providers) == {"embedded"}
    with pytest.raises(ValueError, match="OPENAI_MODEL"):
        build_registry(CompletionsSettings(openai_base_url="http://127.0.0.1:1/v1"))
    with pytest.raises(ValueError, match="not configured"):
        build_registry(CompletionsSettings(provider="anthropic"))
