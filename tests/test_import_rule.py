"""The import rule (docs/architecture.md): the services never import each other, all parts may
import `tokens` and `common`, and the client imports nothing else. Only the assembly (`stack`,
the one-machine stack, and the top-level `cli`) puts parts together."""

from __future__ import annotations

import ast
from pathlib import Path

import codesuggest

LIBRARIES = {"tokens", "common"}
ALLOWED: dict[str, set[str]] = {
    "tokens": set(),
    "common": {"tokens"},
    "portal": LIBRARIES,
    "instance": LIBRARIES,
    "gateway": LIBRARIES,
    "edge": LIBRARIES,
    "client": LIBRARIES,
}
ASSEMBLY = {"stack", "cli"}


def _part(module: str) -> str | None:
    """`codesuggest.gateway.auth` -> `gateway`; None outside the package."""
    names = module.split(".")
    return names[1] if names[0] == "codesuggest" and len(names) > 1 else None


def _imported(path: Path, root: Path) -> set[str]:
    """Every `codesuggest...` module `path` imports, anywhere in it (relative ones resolved)."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def violations(root: Path) -> list[str]:
    """`file: part imports module` for each import the rule forbids, under the package `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        owner = relative.parts[0].removesuffix(".py")
        if owner in ASSEMBLY or owner == "__init__":
            continue
        for module in sorted(_imported(path, root)):
            target = _part(module)
            if target is None or target == owner or target in ALLOWED.get(owner, set()):
                continue
            found.append(f"{relative}: {owner} imports {module}")
    return found


def test_no_part_imports_another() -> None:
    root = Path(codesuggest.__file__).parent
    assert violations(root) == []


def test_every_part_is_under_the_rule() -> None:
    root = Path(codesuggest.__file__).parent
    parts = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts - ASSEMBLY == set(ALLOWED)


def test_the_check_finds_a_service_importing_another(tmp_path: Path) -> None:
    root = tmp_path / "codesuggest"
    for part in ("gateway", "instance", "client", "tokens"):
        (root / part).mkdir(parents=True)
        (root / part / "__init__.py").write_text("")
    (root / "gateway" / "routes.py").write_text(
        "from codesuggest.tokens import Clock\n"
        "def f():\n    from codesuggest.instance.store import Store\n"
    )
    (root / "client" / "cli.py").write_text("from ..gateway import routes\n")
    (root / "tokens" / "keys.py").write_text("import codesuggest.common.logs\n")
    assert violations(root) == [
        "client/cli.py: client imports codesuggest.gateway",
        "gateway/routes.py: gateway imports codesuggest.instance.store",
        "tokens/keys.py: tokens imports codesuggest.common.logs",
    ]
