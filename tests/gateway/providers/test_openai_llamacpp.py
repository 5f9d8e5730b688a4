"""The `openai` provider against a real llama.cpp server (xllamacpp's `Server`: llama.cpp's own
HTTP server, OpenAI-compatible) on loopback with the SmolLM2-135M GGUF, through a real gateway.

Temperature 0; mechanics only. The server runs one slot of 1024 tokens on one thread; the
gateway's prompt budget (estimated tokens) is sized to fit it, as docs/models.md tells users.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import xllamacpp

from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.providers import Params, ProviderUnavailable
from codesuggest.gateway.providers.openai import OpenAIProvider
from gateway.providers.real_gateway import (
    COUNTING,
    RealGateway,
    abandon_a_generation,
    metrics_of,
    real_gateway,
    server_timing,
    settled_metrics,
)
from support.issuer import wait_until
from support.models import WHOLE_FILES, file_body, smollm2_gguf, two_thirds

MODEL = "SmolLM2-135M-Instruct"
SLOT = 1024


@dataclass
class LlamaServer:
    engine: Any
    url: str  # http://127.0.0.1:<port>
    key: str


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    params = xllamacpp.CommonParams()
    params.model.path = str(smollm2_gguf())
    params.model_alias = {MODEL}
    params.n_ctx = SLOT
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port
    key = secrets.token_urlsafe(16)
    params.api_keys = [key]
    params.endpoint_metrics = True
    params.verbosity = -1
    engine = xllamacpp.Server(params)
    yield LlamaServer(engine, engine.listening_address.rstrip("/"), key)
    del engine


@pytest.fixture(scope="module")
def gw(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGateway]:
    settings = CompletionsSettings(
        provider="openai",
        embedded_enabled=False,
        openai_base_url=llama.url + "/v1",
        openai_model=MODEL,
        openai_api_key=llama.key,
        openai_fim_template="none",  # SmolLM2 has no FIM tokens: continue the code
        openai_timeout=120,
        request_timeout=120,
        max_prompt_tokens=600,
        completion_max_tokens=16,
        generation_max_tokens=512,
        temperature=0.0,
    )
    with real_gateway(tmp_path_factory.mktemp("gateway"), settings) as gateway:
        yield gateway


def test_short_prompt_answers_200(gw: RealGateway, llama: LlamaServer):
    before = metrics_of(llama.engine)["tokens_predicted_total"]
    body = file_body("app/main.py", "import os\n\n\ndef main():\n", "")
    with gw.client() as c:
        response = c.post("/v2/code/completions", json=body, headers=gw.headers())
    assert response.status_code == 200, response.text
    assert response.json()["model"] == {"engine": "openai", "name": MODEL, "lang": "python"}
    assert server_timing(response)["model"] > 0
    assert settled_metrics(llama.engine)["tokens_predicted_total"] > before  # it answered


@pytest.mark.parametrize("name", sorted(WHOLE_FILES))
def test_whole_file_two_thirds_in_answers_200(gw: RealGateway, llama: LlamaServer, name: str):
    prefix, suffix = two_thirds(WHOLE_FILES[name])
    before = metrics_of(llama.engine)["prompt_tokens_total"]
    with gw.client() as c:
        response = c.post(
            "/v2/code/completions", json=file_body(name, prefix, suffix), headers=gw.headers()
        )
    assert response.status_code == 200, response.text
    assert 0 < settled_metrics(llama.engine)["prompt_tokens_total"] - before <= SLOT - 16


def test_stop_sequence_ends_a_mid_line_completion_at_the_line_end(
    gw: RealGateway, llama: LlamaServer
):
    before = metrics_of(llama.engine)["tokens_predicted_total"]
    # Unstopped, the model goes on past " a + b" into further lines (all 16 tokens).
    body = file_body("app/main.py", "def add(a, b):\n    return", "\n")
    with gw.client() as c:
        response = c.post("/v2/code/completions", json=body, headers=gw.headers())
    assert response.status_code == 200, response.text
    assert all("\n" not in choice["text"] for choice in response.json()["choices"])
    assert 0 < settled_metrics(llama.engine)["tokens_predicted_total"] - before < 16


def test_streamed_completion_and_timings(gw: RealGateway):
    body = file_body("app/main.py", "def add(a, b):\n", "", stream=True)
    with gw.client() as c:
        response = c.post("/v2/code/completions", json=body, headers=gw.headers())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    done = response.text.split("event: done\ndata: ")[1].split("\n")[0]
    timings = httpx.Response(200, content=done).json()["timings"]
    assert timings["total"] >= timings["model"] > 0


def test_disconnected_client_stops_the_servers_generation(gw: RealGateway, llama: LlamaServer):
    """The gateway closes its upstream connection when its client leaves; llama.cpp's server
    then cancels the generation, long before the rest of the 512 tokens would have taken."""
    left = abandon_a_generation(gw, llama.engine)
    assert 0 < left.predicted < 512
    assert left.freed_after < left.rest_of_generation / 2, left


async def test_infill_api_names_the_servers_refusal_for_a_model_without_fim(
    llama: LlamaServer,
):
    """llama.cpp's /infill needs FIM tokens: its refusal names what the model lacks."""
    provider = OpenAIProvider(
        base_url=llama.url + "/v1", models=(MODEL,), api_key=llama.key, api="infill", timeout=60
    )
    prompt = Prompt("a.py", "python", "#", "def add(a, b):\n    return", "\n")
    with pytest.raises(ProviderUnavailable, match="upstream 501: Infill is not supported"):
        await provider.complete(prompt, MODEL, Params(8, 0.0, "mid_line"))
    await provider.aclose()


async def test_time_budget_cuts_a_generation_and_frees_the_server(llama: LlamaServer):
    provider = OpenAIProvider(
        base_url=llama.url + "/v1", models=(MODEL,), api_key=llama.key, fim_template="none",
        timeout=120, time_budget=1.0,
    )  # fmt: skip
    before = metrics_of(llama.engine)
    started = time.perf_counter()
    completion = await provider.complete(
        Prompt("n.py", "python", "#", COUNTING, ""), MODEL, Params(512, 0.0, "generation")
    )
    took = time.perf_counter() - started
    await provider.aclose()
    wait_until(lambda: metrics_of(llama.engine)["requests_processing"] == 0, 60, what="idle")
    after = metrics_of(llama.engine)
    predicted = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    seconds = after["tokens_predicted_seconds_total"] - before["tokens_predicted_seconds_total"]
    assert completion.finish_reason == "length" and completion.text
    assert 0 < predicted < 512
    assert took < 512 * seconds / predicted / 2  # well before all 512 tokens


async def test_back_to_back_calls_are_all_answered(llama: LlamaServer):
    """llama.cpp's server closes the connection after every streamed answer without a
    `Connection: close`: a call sent at once after another was handed that closed connection
    (every second call failed with "Can not write request body")."""
    provider = OpenAIProvider(
        base_url=llama.url + "/v1", models=(MODEL,), api_key=llama.key, fim_template="none",
        timeout=60,
    )  # fmt: skip
    prompt = Prompt("a.py", "python", "#", "def add(a, b):\n    return", "\n")
    try:
        texts = [(await provider.complete(prompt, MODEL, Params(4, 0.0, "mid_line"))).text
                 for _ in range(6)]  # fmt: skip
    finally:
        await provider.aclose()
    assert len(texts) == 6 and len(set(texts)) == 1 and texts[0].strip()
