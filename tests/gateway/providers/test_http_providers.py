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
    assert sent["prompt"] == (  # context files inside the FIM prefix part
        "<PRE> # Path: util.py\ndef helper():\n    return 1\n\n\n# Path: main.py\n"
        "def add(a, b):\n     <SUF>\n <MID>"
    )
    assert sent["stop"] == ["\n\n", "<EOT>"]  # whole-line: the block ends at a blank line
    assert sent["max_tokens"] == 32 and sent["temperature"] == 0.0
    assert oai.headers_seen[-1]["authorization"] == "Bearer sk-local"


async def test_openai_suffix_mode_and_stop_cap(oai):
    provider = openai(oai, models=("gpt-3.5-turbo-instruct",), fim_template="suffix")
    params = Params(max_tokens=8, temperature=0.1, mode="mid_line", stop=tuple("abcdef"))
    await provider.complete(PROMPT, "gpt-3.5-turbo-instruct", params)
    await provider.aclose()
    sent = oai.requests[-1]
    assert sent["suffix"] == "\n" and sent["prompt"].endswith("def add(a, b):\n    ")
    assert sent["stop"] == ["\n", "a", "b", "c"]  # the line end first, four at most


def test_openai_template_stops_are_capped_at_four(oai):
    provider = openai(oai, models=("qwen2.5-coder-1.5b",))
    _, body = provider.request(PROMPT, "qwen2.5-coder-1.5b", PARAMS, stream=False)
    assert body["stop"] == ["\n\n", "<|endoftext|>", "<|file_sep|>", "<|fim_pad|>"]


def test_openai_auto_template_refuses_a_model_name_it_cannot_place():
    with pytest.raises(ValueError, match="gpt-3.5-turbo-instruct") as caught:
        OpenAIProvider(base_url="http://127.0.0.1:1/v1", models=("gpt-3.5-turbo-instruct",))
    assert "suffix" in str(caught.value)


async def test_openai_chat_api_keeps_only_the_code_block(oai):
    provider = openai(oai, api="chat")
    oai.chunks = ["Sure, here it is:\n```python\nreturn a", " + b\n```\nThis adds them."]
    completion = await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    oai.chunks = ["You should return", " the sum of a and b."]
    prose = await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    await provider.aclose()
    assert completion.text == "return a + b\n"
    assert prose.text == ""  # prose is never passed on as code
    sent = oai.requests[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "def add(a, b):\n    <cursor/>\n" in sent["messages"][1]["content"]
    assert sent["stop"] == ["\n```"]


async def test_openai_stream(oai):
    provider = openai(oai)
    pieces = [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()
    assert pieces == ["return", " a", " +", " b"]
    assert oai.requests[-1]["stream"] is True


async def test_openai_chat_stream_yields_the_code_block(oai):
    oai.chunks = ["Here:\n``", "`py", "thon\nreturn", " a +", " b\n``", "`\nDone."]
    provider = openai(oai, api="chat")
    pieces = [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()
    assert "".join(pieces) == "return a + b\n"


async def answer(provider, model: str, params: Params, stream: bool) -> str:  # type: ignore[no-untyped-def]
    """The provider's text for PROMPT, streamed or in one answer."""
    if stream:
        return "".join([p async for p in provider.stream(PROMPT, model, params)])
    return (await provider.complete(PROMPT, model, params)).text


@pytest.mark.parametrize("stream", [False, True])
async def test_llamacpp_infill_api(oai, stream):
    provider = openai(oai, api="infill", models=("any-gguf",))
    text = await answer(provider, "any-gguf", PARAMS, stream)
    await provider.aclose()
    assert text == "return a + b"
    sent = oai.requests[-1]
    assert sent["input_prefix"] == "def add(a, b):\n    " and sent["input_suffix"] == "\n"
    assert sent["input_extra"] == [{"filename": "util.py", "text": "def helper():\n    return 1\n"}]
    assert sent["n_predict"] == 32 and sent["stop"] == ["\n\n"] and sent["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_mistral_fim_api(oai, stream):
    provider = openai(oai, api="fim", models=("codestral-latest",), fim_template="suffix")
    params = Params(max_tokens=16, temperature=0.0, mode="mid_line")
    text = await answer(provider, "codestral-latest", params, stream)
    await provider.aclose()
    assert text == "return a + b"
    sent = oai.requests[-1]
    assert sent["model"] == "codestral-latest" and sent["suffix"] == "\n"
    assert sent["prompt"].endswith("# Path: main.py\ndef add(a, b):\n    ")
    assert sent["stop"] == ["\n"]


@pytest.mark.parametrize("stream", [False, True])
async def test_ollama_native_api_sends_the_raw_fim_prompt(oai, stream):
    model = "qwen2.5-coder:1.5b-base"
    provider = openai(oai, api="ollama", models=(model,))
    text = await answer(provider, model, PARAMS, stream)
    await provider.aclose()
    assert text == "return a + b"
    sent = oai.requests[-1]
    assert sent["raw"] is True and sent["stream"] is True
    assert sent["prompt"].startswith("<|file_sep|>util.py\n")
    fim = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>"
    assert sent["prompt"].endswith(fim)
    assert sent["options"]["num_predict"] == 32 and sent["options"]["stop"][0] == "\n\n"


async def test_openai_429_keeps_retry_after(oai):
    oai.behavior, oai.status, oai.error_type = "error", 429, "rate_limit_exceeded"
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
    oai.behavior, oai.status = "error", 503
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    oai.behavior = "garbage"
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "codellama:7b-code", PARAMS)
    with pytest.raises(ProviderUnavailable):  # text/html is no SSE stream
        [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    oai.behavior = "broken_stream"
    with pytest.raises(ProviderUnavailable):
        [p async for p in provider.stream(PROMPT, "codellama:7b-code", PARAMS)]
    await provider.aclose()


async def test_openai_timeout_and_cancellation_close_the_connection(oai):
    oai.behavior = "hang"
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
    provider = OpenAIProvider(
        base_url=f"http://127.0.0.1:{port}/v1", models=("m",), fim_template="none"
    )
    with pytest.raises(ProviderUnavailable):
        await provider.complete(PROMPT, "m", PARAMS)
    await provider.aclose()


def anthropic(server: FakeAnthropic, key: str = FakeAnthropic.api_key) -> AnthropicProvider:
    return AnthropicProvider(api_key=key, models=("claude-test",), base_url=server.url)


async def test_anthropic_message(ant):
    provider = anthropic(ant)
    ant.text = "```python\nreturn a + b\n```"
    completion = await provider.complete(PROMPT, "claude-test", PARAMS)
    await provider.aclose()
    assert completion.text == "return a + b\n"
    sent, headers = ant.requests[-1], ant.headers_seen[-1]
    assert headers["anthropic-version"] == "2023-06-01"
    assert sent["model"] == "claude-test" and sent["max_tokens"] == 32
    assert sent["messages"][0]["role"] == "user" and "<cursor/>" in sent["messages"][0]["content"]
    assert "code completion engine" in sent["system"]
    assert sent["stop_sequences"] == ["\n```"]


async def test_anthropic_stream(ant):
    provider = anthropic(ant)
    ant.chunks = ["```\nreturn", " a", " +", " b"]  # stopped at the closing fence
    pieces = [p async for p in provider.stream(PROMPT, "claude-test", PARAMS)]
    await provider.aclose()
    assert "".join(pieces) == "return a + b"
    assert ant.requests[-1]["stream"] is True


async def test_anthropic_errors(ant):
    provider = anthropic(ant)
    ant.behavior, ant.status, ant.error_type = "error", 429, "rate_limit_error"
    ant.headers = {"retry-after": "30"}
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete(PROMPT, "claude-test", PARAMS)
    assert caught.value.retry_after == "30"
    ant.behavior, ant.status, ant.error_type = "error", 529, "overloaded_error"
    with pytest.raises(ProviderUnavailable, match="overloaded|upstream 529"):
        await provider.complete(PROMPT, "claude-test", PARAMS)
    ant.behavior = "broken_stream"
    with pytest.raises(ProviderUnavailable, match="overloaded_error"):
        [p async for p in provider.stream(PROMPT, "claude-test", PARAMS)]
    await provider.aclose()
    wrong_key = anthropic(ant, key="sk-wrong")
    ant.behavior = "text"
    with pytest.raises(ProviderUnavailable, match="401"):
        await wrong_key.complete(PROMPT, "claude-test", PARAMS)
    await wrong_key.aclose()


async def test_anthropic_stream_cancellation_closes_the_connection(ant):
    ant.behavior = "slow_stream"
    ant.chunks = ["```\nreturn", " a"]
    provider = anthropic(ant)
    stream = provider.stream(PROMPT, "claude-test", PARAMS)
    assert await anext(stream) == "return"
    await stream.aclose()
    assert await asyncio.to_thread(ant.disconnected.wait, 5)
    await provider.aclose()
