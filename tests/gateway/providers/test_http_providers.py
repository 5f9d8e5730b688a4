"""The OpenAI-compatible and Anthropic providers against loopback servers speaking their formats."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from codesuggest.gateway.prompts import ContextSnippet, Prompt
from codesuggest.gateway.providers import (
    Params,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from codesuggest.gateway.providers.anthropic import AnthropicProvider
from codesuggest.gateway.providers.openai import OpenAIProvider
from gateway.providers.fake_servers import FakeAnthropic, FakeOpenAI
from support.issuer import wait_until

PROMPT = Prompt(
    file_name="main.py",
    language="python",
    line_comment="#",
    prefix="def add(a, b):\n    ",
    suffix="\n",
    context=(ContextSnippet("util.py", "def helper():\n    return 1\n"),),
)
PARAMS = Params(max_tokens=32, temperature=0.0, mode="whole_line")


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def oai(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.reset()
    return openai_server


@pytest.fixture
def ant(anthropic_server: FakeAnthropic) -> FakeAnthropic:
    anthropic_server.reset()
    return anthropic_server


def openai(server: FakeOpenAI, **kw) -> OpenAIProvider:  # type: ignore[no-untyped-def]
    kw.setdefault("models", ("codellama:7b-code",))
    return OpenAIProvider(base_url=server.url + "/v1", api_key="sk-local", **kw)


async def test_openai_completion_with_fim_template(oai):
    provider = openai(oai)
    completion = await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    await provider.aclose()
    assert completion.text == "return a + b"
    sent = oai.requests[-1]
    assert sent["prompt"] == (
        "# Path: util.py\ndef helper():\n    return 1\n\n\n# Path: main.py\n"
        "<PRE> def add(a, b):\n     <SUF>\n <MID>"
    )
    assert sent["stop"] == ["<EOT>"] and sent["max_tokens"] == 32 and sent["temperature"] == 0.0
    assert oai.headers_seen[-1]["authorization"] == "Bearer sk-local"


async def test_openai_suffix_mode_and_stop_cap(oai):
    provider = openai(oai, models=("gpt-3.5-turbo-instruct",))
    params = Params(max_tokens=8, temperature=0.1, mode="mid_line", stop=tuple("abcdef"))
    await provider.complete(PROMPT, "gpt-3.5-turbo-instruct", params)
    await provider.aclose()
    sent = oai.requests[-1]
    assert sent["suffix"] == "\n" and sent["prompt"].endswith("def add(a, b):\n    ")
    assert sent["stop"] == ["a", "b", "c", "d"]


async def test_openai_chat_api(oai):
    provider = openai(oai, api="chat")
    oai.text = "```python\nreturn a + b\n```"
    completion = await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    await provider.aclose()
    assert completion.text == "```python\nreturn a + b\n```"  # fences are post-processing's job
    messages = oai.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "def add(a, b):\n    <cursor/>\n" in messages[1]["content"]


@pytest.mark.parametrize("api", ["completions", "chat"])
async def test_openai_stream(oai, api):
    provider = openai(oai, api=api)
    pieces = [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()
    assert pieces == ["return", " a", " +", " b"]
    assert oai.requests[-1]["stream"] is True


async def test_openai_429_keeps_retry_after(oai):
    oai.behaviour, oai.status, oai.error_type = "error", 429, "rate_limit_exceeded"
    oai.headers = {"retry-after": "12"}
    provider = openai(oai)
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    with pytest.raises(ProviderRateLimited):
        [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()
    assert caught.value.retry_after == "12"
    assert "upstream says no" in str(caught.value)


async def test_openai_errors_and_bad_stream(oai):
    provider = openai(oai)
    oai.behaviour, oai.status = "error", 503
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    oai.behaviour = "garbage"
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    with pytest.raises(ProviderUnavailable):  # text/html is no SSE stream
        [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    oai.behaviour = "broken_stream"
    with pytest.raises(ProviderUnavailable):
        [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()


async def test_openai_timeout_and_cancellation_close_the_connection(oai):
    oai.behaviour = "hang"
    provider = openai(oai, timeout=0.3)
    with pytest.raises(ProviderTimeout):
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    assert await asyncio.to_thread(oai.disconnected.wait, 5)
    oai.disconnected.clear()
    slow = openai(oai, timeout=30)
    task = asyncio.ensure_future(slow.complete(PROMPT, "codellama:7b-code", PARAMS))
    await asyncio.to_thread(wait_until, lambda: len(oai.requests) >= 2, what="call started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(oai.disconnected.wait, 5), "cancel did not drop the call"
    await provider.aclose()
    await slow.aclose()


async def test_unreachable_server_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", models=("m",))
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "m", PARAMS)
    await provider.aclose()


def anthropic(server: FakeAnthropic, key: str = FakeAnthropic.api_key) -> AnthropicProvider:
    return AnthropicProvider(api_key=key, models=("claude-test",), base_url=server.url)


async def test_anthropic_message(ant):
    provider = anthropic(ant)
    completion = await provider.complete(PROMPT, "claude-test", PARAMS)
    await provider.aclose()
    assert completion.text == "return a + b"
    sent, headers = ant.requests[-1], ant.headers_seen[-1]
    assert headers["anthropic-version"] == "2023-06-01"
    assert sent["model"] == "claude-test" and sent["max_tokens"] == 32
    assert sent["messages"][0]["role"] == "user" and "<cursor/>" in sent["messages"][0]["content"]
    assert "code completion engine" in sent["system"]


async def test_anthropic_stream(ant):
    provider = anthropic(ant)
    pieces = [p async for p in provider.stream(PROMPT, "claude-test", PARAMS)]
    await provider.aclose()
    assert pieces == ["return", " a", " +", " b"]
    assert ant.requests[-1]["stream"] is True


async def test_anthropic_errors(ant):
    provider = anthropic(ant)
    ant.behaviour, ant.status, ant.error_type = "error", 429, "rate_limit_error"
    ant.headers = {"retry-after": "30"}
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete(PROMPT, "claude-test", PARAMS)
    assert caught.value.retry_after == "30"
    ant.behaviour, ant.status, ant.error_type = "error", 529, "overloaded_error"
    with pytest.raises(ProviderUnavailable, match="overloaded|upstream 529"):
        await provider.complete(PROMPT, "claude-test", PARAMS)
    ant.behaviour = "broken_stream"
    with pytest.raises(ProviderUnavailable, match="overloaded_error"):
        [p async for p in provider.stream(PROMPT, "claude-test", PARAMS)]
    await provider.aclose()
    wrong_key = anthropic(ant, key="sk-wrong")
    ant.behaviour = "text"
    with pytest.raises(ProviderUnavailable, match="401"):
        await wrong_key.complete(PROMPT, "claude-test", PARAMS)
    await wrong_key.aclose()


async def test_anthropic_stream_cancellation_closes_the_connection(ant):
    ant.behaviour = "slow_stream"
    provider = anthropic(ant)
    stream = provider.stream(PROMPT, "claude-test", PARAMS)
    assert await anext(stream) == "return"
    await stream.aclose()
    assert await asyncio.to_thread(ant.disconnected.wait, 5)
    await provider.aclose()
