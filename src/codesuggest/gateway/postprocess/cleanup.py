"""Final clean-up: no trailing whitespace, nothing that is only comments or blank."""

from __future__ import annotations

from codesuggest.gateway.postprocess.context import EditContext


def strip_trailing_whitespace(text: str, ctx: EditContext) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def drop_comment_only(text: str, ctx: EditContext) -> str:
    """Empty when every non-blank line is a comment (or there is none)."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    mark = ctx.line_comment
    if mark and all(line.startswith(mark) for line in lines):
        return ""
    return text
