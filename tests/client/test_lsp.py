"""The language server in a subprocess, driven by a real LSP client (pytest-lsp), talking to
the fake instance and gateway on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from client.contract_fakes import GOOD_PAT
from support.polling import eventually

SERVER = [sys.executable, "-m", "codesuggest.client.lsp"]
URI = "file:///work/project/app/main.py"
TEXT = "import os\n\ndef add(a, b):\n    return \n"
CURSOR = types.Position(line=3, character=11)


@contextlib.asynccontextmanager
async def lsp(
    tmp_path, options: dict[str, Any], env: dict[str, str] | None = None
) -> AsyncIterator[tuple[LanguageClient, list[dict[str, Any]]]]:
    statuses: list[dict[str, Any]] = []
    client = make_test_lsp_client()

    @client.feature("$/codesuggest/status")
    def on_status(params: Any) -> None:
        statuses.append({"state": params.state, "message": params.message})

    server_env = {k: v for k, v in os.environ.items() if not k.startswith("CODESUGGEST_")}
    server_env["CODESUGGEST_CONFIG_DIR"] = str(tmp_path / "config")
    server_env.update(env or {})
    await client.start_io(*SERVER, env=server_env)
    try:
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri="file:///work/project",
                initialization_options=options,
            )
        )
        client.server_capabilities = result.capabilities  # type: ignore[attr-defined]
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=URI, language_id="python", version=1, text=TEXT
                )
            )
        )
        yield client, statuses
        await asyncio.wait_for(client.shutdown_session(), 10)
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()  # a failed test must not leave the server waiting on stdin
        await client.stop()


def inline_params() -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=CURSOR,
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


def options(stack, **extra: Any) -> dict[str, Any]:
    return {"codesuggest": {"instanceUrl": stack.instance.url, "debounceMs": 0, **extra}}


async def test_inline_completion_and_completion_come_direct(stack, tmp_path):
    env = {"MY_PAT": GOOD_PAT}
    async with lsp(tmp_path, options(stack, tokenEnv="MY_PAT"), env) as (client, statuses):
        announced = client.server_capabilities
        inline = await client.text_document_inline_completion_async(inline_params())
        listed = await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI),
                                   position=CURSOR)
        )  # fmt: skip
        await eventually(lambda: statuses)
    assert announced.inline_completion_provider is not None
    assert announced.completion_provider is not None
    assert list(announced.execute_command_provider.commands) == ["codesuggest.accepted"]
    assert inline is not None and inline.items[0].insert_text == "return a + b"
    assert inline.items[0].command.command == "codesuggest.accepted"
    assert listed is not None and listed.items[0].text_edit.new_text == "return a + b"
    assert statuses[0]["state"] == "direct"
    assert len(stack.world.direct_access_calls) == 1
    assert stack.world.direct_access_pats == [GOOD_PAT]
    sent = stack.world.gateway_requests[0]["body"]["current_file"]
    assert sent["file_name"] == "app/main.py"
    assert sent["content_above_cursor"] == "import os\n\ndef add(a, b):\n    return "
    assert sent["content_below_cursor"] == "\n"
    assert stack.world.monolith_requests == []


async def test_cancel_request_stops_the_http_call(stack, tmp_path):
    stack.world.model_delay = 3.0
    async with lsp(tmp_path, options(stack, token=GOOD_PAT)) as (client, _):
        request_id = "inline-1"
        pending = asyncio.ensure_future(
            client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(), msg_id=request_id
            )
        )
        await eventually(lambda: stack.world.in_flight == 1)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=request_id))
        with pytest.raises(JsonRpcRequestCancelled):
            await pending
        await eventually(lambda: stack.world.disconnects == 1, within=2.0)
        stack.world.model_delay = 0.0
        after = await client.text_document_inline_completion_async(inline_params())
    assert after is not None and after.items[0].insert_text == "return a + b"


async def test_a_mid_word_completion_item_replaces_the_word_typed_so_far(stack, tmp_path):
    """At `f.r|` the item's edit starts at the word's start and holds the typed part, so an
    editor's menu, filtering by what was typed, keeps it."""
    uri = "file:///work/project/app/files.py"
    line = "    return f.r"
    cursor = types.Position(line=1, character=len(line))
    async with lsp(tmp_path, options(stack, token=GOOD_PAT)) as (client, _statuses):
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=f"def first(f):\n{line}\n"
                )
            )
        )
        listed = await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri),
                                   position=cursor)
        )  # fmt: skip
    assert listed is not None
    item = listed.items[0]
    assert item.text_edit.range.start == types.Position(line=1, character=len(line) - 1)
    assert item.text_edit.range.end == cursor
    assert item.text_edit.new_text == "read()"
    assert item.label == "read()" and item.filter_text == "read()"


async def test_settings_changed_at_run_time(stack, tmp_path):
    async with lsp(tmp_path, options(stack, token="glpat-wrong")) as (client, statuses):
        refused = await client.text_document_inline_completion_async(inline_params())
        await eventually(lambda: any(s["state"] == "unauthorized" for s in statuses))
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=options(stack, token=GOOD_PAT))
        )
        served = await client.text_document_inline_completion_async(inline_params())
    assert refused is None
    assert served is not None and served.items[0].insert_text == "return a + b"
    assert stack.world.direct_access_pats == ["glpat-wrong", GOOD_PAT]


async def test_gateway_down_announces_monolith_and_still_serves(stack, tmp_path):
    async with lsp(tmp_path, options(stack, token=GOOD_PAT)) as (client, statuses):
        await client.text_document_inline_completion_async(inline_params())
        stack.gateway.stop()
        try:
            served = await client.text_document_inline_completion_async(inline_params())
            await eventually(lambda: len(statuses) >= 2)
        finally:
            stack.gateway.start()
    assert served is not None and served.items[0].insert_text == "return a + b"
    assert [s["state"] for s in statuses] == ["direct", "monolith"]
    assert "direct path failed" in statuses[1]["message"]
    assert len(stack.world.monolith_requests) == 1


async def test_accepts_and_rejects_reach_the_next_request(stack, tmp_path):
    async with lsp(tmp_path, options(stack, token=GOOD_PAT)) as (client, _):
        first = await client.text_document_inline_completion_async(inline_params())
        accepted = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="codesuggest.accepted", arguments=first.items[0].command.arguments
            )
        )
        await client.text_document_inline_completion_async(inline_params())
        # the user types something else: the suggestion on screen is rejected
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=CURSOR, end=CURSOR), text="x"
                    )
                ],
            )
        )
        await client.text_document_inline_completion_async(inline_params())
    assert accepted is True
    telemetry = [r["body"]["telemetry"] for r in stack.world.gateway_requests]
    counts = [[(t["requests"], t["accepts"], t["rejects"]) for t in items] for items in telemetry]
    assert counts == [[], [(1, 1, 0)], [(1, 0, 1)]]


async def test_request_cancelled_during_debounce_sends_nothing(stack, tmp_path):
    async with lsp(tmp_path, options(stack, token=GOOD_PAT, debounceMs=300)) as (client, _):
        early = asyncio.ensure_future(
            client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(), msg_id="early"
            )
        )
        await eventually(lambda: "early" in client.protocol._request_futures)  # sent
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="early"))
        with pytest.raises(JsonRpcRequestCancelled):
            await early
        # sent after the cancelled one, so it ends its debounce after the other would have
        served = await client.text_document_inline_completion_async(inline_params())
    assert served is not None
    assert len(stack.world.gateway_requests) == 1
