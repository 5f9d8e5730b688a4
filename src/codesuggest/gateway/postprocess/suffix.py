"""Strip from a completion what the code after the cursor already contains."""

from __future__ import annotations

from codesuggest.gateway.postprocess.brackets import CLOSERS, QUOTES
from codesuggest.gateway.postprocess.context import EditContext

_MAX_REPEATED_LINES = 5
_CLOSING = CLOSERS | QUOTES | frozenset(";,")


def strip_suffix_overlap(text: str, ctx: EditContext) -> str:
    text = _drop_repeated_lines(text, ctx.suffix)
    rest = ctx.rest_of_line.strip()
    if not rest or not text:
        return text
    head, sep, last = text.rpartition("\n")
    body = last.rstrip()
    if body.endswith(rest):
        body = body[: len(body) - len(rest)].rstrip()
    else:
        # The editor's auto-closed brackets/quotes: `foo(` + `)` must not become `foo(x))`.
        k = 0
        while k < len(rest) and rest[k] in _CLOSING:
            k += 1
        for n in range(k, 0, -1):
            if body.endswith(rest[:n]):
                body = body[: len(body) - n]
                break
    return f"{head}{sep}{body}"


def _drop_repeated_lines(text: str, suffix: str) -> str:
    """A model that re-generates the lines after the cursor: drop the repeated tail."""
    following = [line.strip() for line in suffix.split("\n")[1:] if line.strip()]
    lines = text.split("\n")
    if len(lines) < 2 or not following:
        return text
    for n in range(min(_MAX_REPEATED_LINES, len(lines) - 1, len(following)), 0, -1):
        tail = [line.strip() for line in lines[-n:]]
        if tail == following[:n]:
            return "\n".join(lines[:-n]).rstrip()
    return text
