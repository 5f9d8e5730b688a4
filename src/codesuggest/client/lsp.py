"""The language server behind `codesuggest lsp` (stdio), on pygls 2.

Serves `textDocument/inlineCompletion` (LSP 3.18) and `textDocument/completion`; a cancelled
request (`$/cancelRequest`) cancels its task and so its HTTP call. Settings come from
`initializationOptions` and `workspace/didChangeConfiguration`. Path changes and auth
problems are announced with `$/codesuggest/status` `{"state", "message"}`. Suggestions
shown, accepted (the `codesuggest.accepted` command, or a `didChange` that inserts the
suggestion) and rejected are counted and sent with the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace.position_codec import ServerTextPosition

from codesuggest.client import settings as client_settings
from codesuggest.client.service import (
    CompletionFailed,
    CompletionInput,
    Suggestion,
    SuggestionClient,
    client_version,
)

STATUS_NOTIFICATION = "$/codesuggest/status"
ACCEPT_COMMAND = "codesuggest.accepted"

log = logging.getLogger("codesuggest.client.lsp")


class CodesuggestServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codesuggest", client_version())
        self.settings = client_settings.from_editor({})
        self._client: SuggestionClient | None = None
        self._shown: dict[str, Suggestion] = {}  # uri -> suggestion on screen
        self._closing: set[asyncio.Task[None]] = set()  # old clients being closed

    def configure(self, raw: Any, announce: bool = True) -> None:
        new = client_settings.from_editor(raw)
        if new == self.settings and self._client is not None:
            return
        old, self._client = self._client, None
        self.settings = new
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if announce and not new.complete:
            self.status("unauthorized", "set instanceUrl and token (or CODESUGGEST_TOKEN)")

    def suggestion_client(self) -> SuggestionClient | None:
        if self._client is None and self.settings.complete:
            self._client = SuggestionClient(
                self.settings.instance_url or "",
                self.settings.token or "",
                timeout=self.settings.timeout,
                on_status=self.status,
                project_path=self.settings.project_path,
            )
        return self._client

    def status(self, state: str, message: str) -> None:
        self.protocol.notify(STATUS_NOTIFICATION, {"state": state, "message": message})

    async def suggest(self, uri: str, position: types.Position) -> Suggestion | None:
        await asyncio.sleep(self.settings.debounce)
        client = self.suggestion_client()
        if client is None:
            self.status("unauthorized", "set instanceUrl and token (or CODESUGGEST_TOKEN)")
            return None
        document = self.workspace.get_text_document(uri)
        offset = document.offset_at_position(position)
        source = document.source
        request = CompletionInput(
            file_name=self._file_name(uri),
            content_above_cursor=source[:offset],
            content_below_cursor=source[offset:],
            language_identifier=document.language_id,
            project_path=self.settings.project_path,
        )
        try:
            suggestion = await client.complete(request)
        except CompletionFailed:
            return None  # the status notification already told the user
        except Exception as exc:  # a bug of ours must not reach the editor as a traceback
            log.exception("completion failed")
            self.status("error", f"internal error: {type(exc).__name__}")
            return None
        if suggestion.text is None:
            return None
        self._show(uri, suggestion)
        return suggestion

    def typed_word(self, uri: str, position: types.Position) -> tuple[str, types.Position]:
        """The part of a word typed before `position` and where that word starts: a completion
        item replaces the word, so an editor's menu filters it against what was typed."""
        document = self.workspace.get_text_document(uri)
        lines = document.lines
        codec = document.position_codec
        cursor = codec.position_from_client_units(lines, position)
        line = lines[cursor.line] if cursor.line < len(lines) else ""
        start = cursor.character
        while start > 0 and (line[start - 1].isalnum() or line[start - 1] == "_"):
            start -= 1
        begin = codec.position_to_client_units(lines, ServerTextPosition(cursor.line, start))
        return line[start : cursor.character], begin

    def accepted(self, suggestion_id: str) -> bool:
        for uri, shown in list(self._shown.items()):
            if shown.id == suggestion_id:
                del self._shown[uri]
                self._count(shown, accepted=True)
                return True
        return False

    def document_changed(self, uri: str, changes: list[Any]) -> None:
        shown = self._shown.get(uri)
        if shown is None:
            return
        expected = (shown.text or "").strip()
        for change in changes:
            inserted = getattr(change, "text", "")
            if inserted.strip() and inserted.strip() == expected:
                del self._shown[uri]
                self._count(shown, accepted=True)
                return
            if inserted and (shown.text or "").startswith(inserted):
                continue  # typing along with the suggestion: still on screen
            del self._shown[uri]
            self._count(shown, accepted=False)
            return

    def _show(self, uri: str, suggestion: Suggestion) -> None:
        previous = self._shown.get(uri)
        if previous is not None:
            self._count(previous, accepted=False)
        self._shown[uri] = suggestion

    def _count(self, suggestion: Suggestion, accepted: bool) -> None:
        if self._client is None:
            return
        record = self._client.telemetry.accept if accepted else self._client.telemetry.reject
        record(suggestion.model_engine, suggestion.model_name, suggestion.lang)

    def _file_name(self, uri: str) -> str:
        path = to_fs_path(uri) or uri
        root = self.workspace.root_path
        if root:
            with contextlib.suppress(ValueError):
                return str(Path(path).relative_to(root))
        return Path(path).name


server = CodesuggestServer()


@server.feature(types.INITIALIZE)
def initialize(ls: CodesuggestServer, params: types.InitializeParams) -> None:
    # no notification before the initialize response: it would break strict clients
    ls.configure(params.initialization_options or {}, announce=False)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(
    ls: CodesuggestServer, params: types.DidChangeConfigurationParams
) -> None:
    ls.configure(params.settings or {})


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodesuggestServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.document_changed(params.text_document.uri, list(params.content_changes))


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: CodesuggestServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    suggestion = await ls.suggest(params.text_document.uri, params.position)
    if suggestion is None or suggestion.text is None:
        return None
    item = types.InlineCompletionItem(
        insert_text=suggestion.text,
        range=types.Range(start=params.position, end=params.position),
        command=types.Command(
            title="Accept suggestion", command=ACCEPT_COMMAND, arguments=[suggestion.id]
        ),
    )
    return types.InlineCompletionList(items=[item])


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "("])
)
async def completion(
    ls: CodesuggestServer, params: types.CompletionParams
) -> types.CompletionList | None:
    suggestion = await ls.suggest(params.text_document.uri, params.position)
    if suggestion is None or suggestion.text is None:
        return None
    typed, word_start = ls.typed_word(params.text_document.uri, params.position)
    text = typed + suggestion.text
    first_line = text.strip().split("\n", 1)[0][:60]
    item = types.CompletionItem(
        label=first_line or text[:60],
        kind=types.CompletionItemKind.Text,
        detail=f"codesuggest ({suggestion.path})",
        filter_text=text,
        text_edit=types.TextEdit(
            range=types.Range(start=word_start, end=params.position), new_text=text
        ),
        command=types.Command(
            title="Accept suggestion", command=ACCEPT_COMMAND, arguments=[suggestion.id]
        ),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


@server.command(ACCEPT_COMMAND)
def accepted(ls: CodesuggestServer, suggestion_id: str) -> bool:
    return ls.accepted(str(suggestion_id))


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server.start_io()


if __name__ == "__main__":
    main()
