"""docs/client.md's Helix and VS Code recipes, checked as far as this machine can: neither
editor installs here (Helix is not packaged for Debian 12, VS Code is not in Debian), so the
Helix TOML is checked against the keys Helix's configuration reads, and the VS Code extension
is type-checked against VS Code's and vscode-languageclient's type definitions and packaged
with `vsce`. The GitLab Workflow setting names are checked against the extension's own
`package.json`. Tools come from npm once into a cache (a failed download fails, never skips).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from pathlib import Path

import platformdirs

from codesuggest.client.settings import from_editor

DOCS = Path(__file__).resolve().parents[2] / "docs" / "client.md"
# helix-core/src/syntax/config.rs, `LanguageServerConfiguration` (serde, kebab-case).
HELIX_SERVER_KEYS = {
    "command",
    "args",
    "config",
    "environment",
    "timeout",
    "required-root-patterns",
}
# The server's settings (docs/client.md, "Settings").
SERVER_SETTINGS = {"instanceUrl", "token", "tokenEnv", "debounceMs", "timeoutMs", "projectPath"}
NPM_TOOLS = [
    "typescript@5.9.3",
    "@types/vscode@1.82.0",
    "@types/node@20.19.43",
    "vscode-languageclient@9.0.1",
    "@vscode/vsce@3.9.2",
]
WEB_IDE = "@gitlab/web-ide@0.0.1-dev-20260106142046"
WORKFLOW_MANIFEST = "package/dist/public/vscode/extensions/gitlab-vscode-extension/package.json"


def section(heading: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"#### {heading}\n")
    end = text.find("\n#### ", start + 1)
    return text[start : end if end != -1 else len(text)]


def block(heading: str, language: str, index: int = 0) -> str:
    return re.findall(rf"```{language}\n(.*?)```", section(heading), re.S)[index]


def uncommented(text: str, marker: str) -> str:
    """The recipe with its commented-out options line turned on."""
    return re.sub(rf"^(\s*){marker} ?", r"\1", text, flags=re.M)


def test_the_helix_recipe_uses_only_keys_helix_reads() -> None:
    config = tomllib.loads(uncommented(block("Helix", "toml"), "#"))
    servers = config["language-server"]
    assert set(servers) == {"codesuggest"}
    server = servers["codesuggest"]
    assert set(server) <= HELIX_SERVER_KEYS, set(server) - HELIX_SERVER_KEYS
    assert [server["command"], *server["args"]] == ["codesuggest", "lsp"]
    (language,) = config["language"]
    assert set(language) == {"name", "language-servers"}
    assert "codesuggest" in language["language-servers"]
    # `config` becomes initializationOptions: every key is a setting the server applies.
    options = server["config"]
    assert set(options) <= SERVER_SETTINGS
    applied = from_editor(options, environ={"GITLAB_PAT": "glpat-from-env"})
    assert applied.instance_url == options["instanceUrl"]
    assert applied.token == "glpat-from-env"


def test_the_helix_recipe_as_copied_sends_no_options() -> None:
    config = tomllib.loads(block("Helix", "toml"))
    assert "config" not in config["language-server"]["codesuggest"]


def _cache() -> Path:
    return Path(platformdirs.user_cache_dir("codesuggest")) / "vscode-recipe"


def _npm() -> str:
    npm = shutil.which("npm")
    assert npm, "npm is needed once to fetch the VS Code tools (scripts/install-system-packages)"
    return npm


def npm_tools() -> Path:
    """node_modules with TypeScript, the VS Code types, vscode-languageclient and vsce."""
    root = _cache() / "tools"
    stamp = root / "installed.json"
    if stamp.exists() and json.loads(stamp.read_text()) == NPM_TOOLS:
        return root / "node_modules"
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "vscode-recipe-check", "private": true}')
    subprocess.run(
        [_npm(), "install", "--silent", "--no-audit", "--no-fund", *NPM_TOOLS],
        cwd=root, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    stamp.write_text(json.dumps(NPM_TOOLS))
    return root / "node_modules"


def workflow_manifest() -> dict[str, object]:
    """GitLab Workflow's package.json, as bundled in the GitLab Web IDE's npm package."""
    target = _cache() / "gitlab-workflow-package.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            subprocess.run(
                [_npm(), "pack", WEB_IDE, "--pack-destination", tmp, "--silent"],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
            (tarball,) = Path(tmp).glob("*.tgz")
            with tarfile.open(tarball) as archive:
                member = archive.extractfile(WORKFLOW_MANIFEST)
                assert member is not None
                (Path(tmp) / "package.json").write_bytes(member.read())
            with contextlib.suppress(OSError):
                (Path(tmp) / "package.json").rename(target)
    return json.loads(target.read_text())  # type: ignore[no-any-return]


def extension(tmp_path: Path, modules: Path) -> Path:
    folder = tmp_path / "codesuggest-extension"
    folder.mkdir()
    (folder / "package.json").write_text(block("VS Code", "json"))
    (folder / "extension.js").write_text(block("VS Code", "js"))
    (folder / "node_modules").symlink_to(modules)
    return folder


def test_the_vscode_extension_type_checks(tmp_path: Path) -> None:
    modules = npm_tools()
    folder = extension(tmp_path, modules)
    manifest = json.loads((folder / "package.json").read_text())
    assert manifest["main"] == "./extension.js"
    assert manifest["dependencies"]["vscode-languageclient"] == "^9.0.1"
    # As copied, and with the commented-out options turned on.
    (folder / "options.js").write_text(uncommented(block("VS Code", "js"), "//"))
    assert "initializationOptions:" in (folder / "options.js").read_text()
    for source in ("extension.js", "options.js"):
        checked = subprocess.run(
            [str(modules / ".bin" / "tsc"), "--noEmit", "--allowJs", "--checkJs",
             "--module", "commonjs", "--target", "es2022", "--types", "node,vscode",
             "--typeRoots", str(modules / "@types"), source],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert checked.returncode == 0, source + ": " + checked.stdout + checked.stderr


def test_the_vscode_extension_packages(tmp_path: Path) -> None:
    modules = npm_tools()
    folder = extension(tmp_path, modules)
    (folder / "node_modules").unlink()  # the manifest is what is checked here
    packaged = subprocess.run(
        [str(modules / ".bin" / "vsce"), "package", "--allow-missing-repository",
         "--skip-license", "--no-dependencies"],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    assert (folder / "codesuggest-0.0.1.vsix").exists()


def test_the_gitlab_workflow_settings_named_exist() -> None:
    text = DOCS.read_text(encoding="utf-8")
    named = set(re.findall(r"`(gitlab\.[A-Za-z.]+)`", text)) - {"gitlab.vim"}  # a plugin
    assert named, "docs/client.md names no GitLab Workflow settings"
    contributes = workflow_manifest()["contributes"]
    assert isinstance(contributes, dict)
    configuration = contributes["configuration"]
    sections = configuration if isinstance(configuration, list) else [configuration]
    known = {key for part in sections for key in part.get("properties", {})}
    assert named <= known, named - known
