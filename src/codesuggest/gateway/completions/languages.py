"""Language detection: the file extension first, then the editor's `language_identifier`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    line_comment: str | None  # None when the language has no line comment


_LANGUAGES = {
    lang.name: lang
    for lang in (
        Language("python", "#"),
        Language("javascript", "//"),
        Language("typescript", "//"),
        Language("go", "//"),
        Language("java", "//"),
        Language("kotlin", "//"),
        Language("scala", "//"),
        Language("c", "//"),
        Language("cpp", "//"),
        Language("csharp", "//"),
        Language("rust", "//"),
        Language("swift", "//"),
        Language("php", "//"),
        Language("ruby", "#"),
        Language("shell", "#"),
        Language("r", "#"),
        Language("perl", "#"),
        Language("elixir", "#"),
        Language("yaml", "#"),
        Language("toml", "#"),
        Language("terraform", "#"),
        Language("sql", "--"),
        Language("lua", "--"),
        Language("haskell", "--"),
        Language("html", None),
        Language("css", None),
        Language("markdown", None),
        Language("json", None),
    )
}

_EXTENSIONS = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript",
    ".go": "go", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".cs": "csharp", ".rs": "rust", ".swift": "swift", ".php": "php",
    ".rb": "ruby", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".r": "r",
    ".pl": "perl", ".ex": "elixir", ".exs": "elixir", ".yml": "yaml", ".yaml": "yaml",
    ".toml": "toml", ".tf": "terraform", ".sql": "sql", ".lua": "lua", ".hs": "haskell",
    ".html": "html", ".htm": "html", ".css": "css", ".scss": "css", ".md": "markdown",
    ".json": "json",
}  # fmt: skip

# Editor language ids (VS Code / LSP) that differ from our names.
_IDENTIFIERS = {
    "javascriptreact": "javascript",
    "typescriptreact": "typescript",
    "golang": "go",
    "c++": "cpp",
    "cs": "csharp",
    "c#": "csharp",
    "shellscript": "shell",
    "bash": "shell",
    "sh": "shell",
    "hcl": "terraform",
    "py": "python",
    "js": "javascript",
    "ts": "typescript",
    "rb": "ruby",
}


def detect_language(file_name: str, language_identifier: str | None) -> Language | None:
    """The language of the file being edited, or None when neither hint is known."""
    suffix = PurePosixPath(file_name.replace("\\", "/")).suffix.lower()
    name = _EXTENSIONS.get(suffix)
    if name is None and language_identifier:
        ident = language_identifier.strip().lower()
        name = _IDENTIFIERS.get(ident, ident)
    return _LANGUAGES.get(name) if name else None
