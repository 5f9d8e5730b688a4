"""The client against the real portal, instance and gateway on loopback (SQLite,
self-managed realm), started once for this module with the instance tests' harness."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities
from pytest_lsp.client import make_test_lsp_client

from codesuggest.client.service import CompletionInput, SuggestionClient
from instance.harness import Stack, start_stack

COMPLETION = CompletionInput(
    "app/main.py",
    "import os\n\ndef read_file(path):\n    with open(path) as f:\n        return f.",
    "\n",
    "python",
)
GENERATION = CompletionInput(
    "app/main.py", "# write a function that adds two numbers\n", "", "python"
)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("client-real-stack")
    stack = start_stack(tmp, f"sqlite:///{tmp / 'instance.db'}", "self-managed", "sqlite")
    try:
        yield stack
    finally:
        stack.close()


async def test_completion_direct_and_generation_through_the_instance(real):
    pat = real.user()
    before = dict(real.gateway_counter.counts)
    client = SuggestionClient(real.instance.url, pat)
    try:
        first = await client.complete(COMPLETION)
        second = await client.complete(COMPLETION)
        generation = await client.complete(GENERATION)
    finally:
        await client.aclose()
    counts = real.gateway_counter.counts
    assert (first.path, second.path, generation.path) == ("direct", "direct", "monolith")
    assert first.text and first.model_name
    assert "model" in second.timings["server_timing_ms"]
    assert counts["/ai/v2/completions"] - before.get("/ai/v2/completions", 0) == 2
    assert counts["/v2/code/generations"] - before.get("/v2/code/generations", 0) == 1
    assert counts["/auth/v1/code/user_access_token"] - before.get(
        "/auth/v1/code/user_access_token", 0
    ) == 1  # fmt: skip


async def test_admin_disabling_direct_connections_sends_completions_to_the_instance(real):
    pat = real.user()
    statuses: list[tuple[str, str]] = []
    real.set("disabled_direct_code_suggestions", True)
    before = real.gateway_counter.counts["/ai/v2/completions"]
    client = SuggestionClient(
        real.instance.url, pat, on_status=lambda s, m: statuses.append((s, m))
    )
    try:
        paths = [(await client.complete(COMPLETION)).path for _ in range(3)]
    finally:
        await client.aclose()
        real.set("disabled_direct_code_suggestions", False)
    assert paths == ["monolith"] * 3
    assert statuses[0] == ("monolith", "Direct connections are disabled")
    assert client.details.stats.calls == 1
    assert real.gateway_counter.counts["/ai/v2/completions"] == before


async def test_language_server_gets_a_suggestion_from_the_real_stack(real, tmp_path):
    pat = real.user()
    client = make_test_lsp_client()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODESUGGEST_")}
    env |= {"CODESUGGEST_CONFIG_DIR": str(tmp_path), "CODESUGGEST_TOKEN": pat}
    before = real.gateway_counter.counts["/ai/v2/completions"]
    await client.start_io(sys.executable, "-m", "codesuggest.client.lsp", env=env)
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={"instanceUrl": real.instance.url, "debounceMs": 0},
            )
        )
        uri = "file:///tmp/project/main.py"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1,
                    text=COMPLETION.content_above_cursor + COMPLETION.content_below_cursor,
                )
            )
        )  # fmt: skip
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=4, character=17),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        await client.shutdown_session()
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()
    assert result is not None and result.items[0].insert_text
    assert real.gateway_counter.counts["/ai/v2/completions"] == before + 1
