"""The `local` provider with real weights (SmolLM2-135M GGUF) in a real gateway on loopback.

Temperature 0; these check mechanics (status, fit, stops, cancellation, sockets), not the
quality of a 135M model's code. The model is loaded once for the module; one thread and a
1024-token slot keep it quick on a busy 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.prompts import PromptBudget, build_prompt
from codesuggest.gateway.providers import Params
from codesuggest.gateway.providers.local import LocalProvider
from gateway.providers.real_gateway import (
    COUNTING,
    RealGateway,
    abandon_a_generation,
    real_gateway,
    server_timing,
    settled_metrics,
)
from support.issuer import Issuer, wait_until
from support.models import WHOLE_FILES, file_body, smollm2_gguf, two_thirds
from support.servers import free_port

SLOT = 1024


def local_settings(**overrides) -> CompletionsSettings:  # type: ignore[no-untyped-def]
    values = {
        "provider": "local",
        "embedded_enabled": False,
        "local_model_path": smollm2_gguf(),
        "local_n_ctx": SLOT,
        "local_parallel": 1,  # one slot: a request left running would hold up the next one
        "local_threads": 1,
        "local_time_budget": 120.0,
        "completion_max_tokens": 16,
        "generation_max_tokens": 512,
        "temperature": 0.0,
        "request_timeout": 120.0,
    }
    values.update(overrides)
    return CompletionsSettings(**values)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGateway]:
    with real_gateway(tmp_path_factory.mktemp("gateway"), local_settings()) as gateway:
        yield gateway


def provider_of(gw: RealGateway) -> LocalProvider:
    provider = gw.app.state.ctx.completions.registry.providers["local"]
    assert isinstance(provider, LocalProvider)
    return provider


def engine_metrics(provider: LocalProvider) -> dict[str, float]:
    return settled_metrics(provider.server)


def test_model_without_fim_tokens_gets_the_plain_template(gw: RealGateway):
    provider = provider_of(gw)
    assert provider.template is not None and provider.template.name == "none"
    assert provider.slot_tokens == SLOT


def test_short_prompt_answers_200(gw: RealGateway):
    body = file_body("app/main.py", "def add(a, b):\n    return a", "\n")
    with gw.client() as c:
        response = c.post("/v2/code/completions", json=body, headers=gw.headers())
    assert response.status_code == 200, response.text
    assert response.json()["model"]["engine"] == "local"
    assert server_timing(response)["model"] > 0


@pytest.mark.parametrize("name", sorted(WHOLE_FILES))
def test_whole_file_two_thirds_in_answers_200(gw: RealGateway, name: str):
    """The builder's estimate (2048 tokens) is over the 1024-token slot: the provider cuts the
    prompt by the engine's own count instead of failing with 'exceeds the context size'."""
    prefix, suffix = two_thirds(WHOLE_FILES[name])
    before = engine_metrics(provider_of(gw))["prompt_tokens_total"]
    with gw.client() as c:
        response = c.post(
            "/v2/code/completions", json=file_body(name, prefix, suffix), headers=gw.headers()
        )
    assert response.status_code == 200, response.text
    prompt_tokens = engine_metrics(provider_of(gw))["prompt_tokens_total"] - before
    assert 0 < prompt_tokens <= SLOT - 16


async def test_render_fits_the_slot_by_the_engines_count(gw: RealGateway):
    provider = provider_of(gw)
    prefix, suffix = two_thirds(WHOLE_FILES["json/decoder.py"])
    prompt = build_prompt(
        file_name="json/decoder.py",
        language="python",
        line_comment="#",
        prefix=prefix,
        suffix=suffix,
        budget=PromptBudget(max_tokens=4096),
    )
    params = Params(max_tokens=512, temperature=0.0, mode="generation")
    text = await provider.render(prompt, params)
    assert await provider.count(prompt.prefix) > SLOT  # the input alone is over the slot
    assert await provider.count(text) <= SLOT - 512
    assert prefix.endswith(text)  # the plain template: the code before the cursor, cut on a line
    assert prefix[len(prefix) - len(text) - 1] == "\n"


def test_stop_sequence_ends_a_mid_line_completion_at_the_line_end(gw: RealGateway):
    provider = provider_of(gw)
    before = engine_metrics(provider)["tokens_predicted_total"]
    # Unstopped, the model goes on past " a + b" into further lines (all 16 tokens).
    body = file_body("app/main.py", "def add(a, b):\n    return", "\n")
    with gw.client() as c:
        response = c.post(
            "/v2/code/completions", json={**body, "stream": False}, headers=gw.headers()
        )
    assert response.status_code == 200, response.text
    predicted = engine_metrics(provider)["tokens_predicted_total"] - before
    choices = response.json()["choices"]
    assert all("\n" not in choice["text"] for choice in choices)
    assert 0 < predicted < 16, "the engine generated past the end of the line"


def test_disconnected_client_frees_the_engine(gw: RealGateway):
    """A 512-token generation whose client leaves stops at once: the one slot is free long
    before the rest of those 512 tokens would have taken, and the next request is served."""
    left = abandon_a_generation(gw, provider_of(gw).server)
    assert 0 < left.predicted < 512
    assert left.freed_after < left.rest_of_generation / 2, left
    with gw.client() as c:
        response = c.post(
            "/v2/code/completions",
            json=file_body("app/main.py", "def add(a, b):\n    return a", "\n"),
            headers=gw.headers(),
        )
    assert response.status_code == 200


def test_time_budget_cuts_a_generation_and_answers_what_it_has(gw: RealGateway):
    provider = provider_of(gw)
    body = file_body("app/numbers.py", COUNTING, "", user_instruction="continue the list")
    before = engine_metrics(provider)
    provider.time_budget = 1.0
    try:
        started = time.perf_counter()
        with gw.client() as c:
            response = c.post("/v2/code/generations", json=body, headers=gw.headers())
        took = time.perf_counter() - started
    finally:
        provider.time_budget = 120.0
    assert response.status_code == 200, response.text
    after = engine_metrics(provider)
    predicted = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    seconds = after["tokens_predicted_seconds_total"] - before["tokens_predicted_seconds_total"]
    assert 0 < predicted < 512
    assert took < 512 * seconds / predicted / 2  # well before all 512 tokens


def test_streamed_final_event_total_covers_the_model_time(gw: RealGateway):
    body = file_body("app/main.py", "def add(a, b):\n", "", stream=True)
    with gw.client() as c:
        response = c.post("/v2/code/completions", json=body, headers=gw.headers())
    assert response.status_code == 200
    done = response.text.split("event: done\ndata: ")[1].split("\n")[0]
    timings = httpx.Response(200, content=done).json()["timings"]
    assert timings["total"] >= timings["model"] > 0


async def test_fim_template_on_a_model_without_fim_tokens_fails_at_start():
    """What the gateway's start-up runs (ProviderRegistry.start): it stops with this message."""
    provider = LocalProvider(smollm2_gguf(), n_ctx=256, parallel=1, threads=1, template="qwen")
    with pytest.raises(RuntimeError) as caught:
        await provider.start()
    message = str(caught.value)
    assert "SmolLM2-135M-Instruct.Q4_1" in message and "'qwen'" in message
    assert "<|fim_prefix|>" in message
    assert provider.server is None and not provider.ready


def test_gateway_process_listens_on_its_own_port_only(tmp_path: Path):
    portal = Issuer("self-managed").start()
    port = free_port()
    env = {
        **os.environ,
        "CODESUGGEST_GATEWAY_DATA_DIR": str(tmp_path),
        "CODESUGGEST_GATEWAY_TRUSTED_ISSUERS": f'[{{"url": "{portal.url}", "kind": "portal"}}]',
        "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "local",
        "CODESUGGEST_GATEWAY_COMPLETIONS__EMBEDDED_ENABLED": "false",
        "CODESUGGEST_GATEWAY_COMPLETIONS__LOCAL_MODEL_PATH": str(smollm2_gguf()),
        "CODESUGGEST_GATEWAY_COMPLETIONS__LOCAL_N_CTX": "512",
        "CODESUGGEST_GATEWAY_COMPLETIONS__LOCAL_THREADS": "1",
    }
    command = [str(Path(sys.executable).with_name("codesuggest")), "gateway", "serve"]
    command += ["--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/monitoring/ready"

        def ready() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 120, what="gateway subprocess ready")
        gateway = psutil.Process(process.pid)
        listening = {
            (c.family, c.laddr)
            for proc in (gateway, *gateway.children(recursive=True))
            for c in proc.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert {addr.port for _, addr in listening} == {port}, listening
        unix = [c.laddr for c in gateway.net_connections(kind="unix") if c.laddr]
        for path in unix:  # the engine's private socket: only this user may reach it
            assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0, path
    finally:
        process.terminate()
        process.wait(30)
        portal.stop()
