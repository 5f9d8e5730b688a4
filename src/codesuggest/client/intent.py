"""Decide whether the cursor asks for a completion or a generation.

A generation is asked for when the cursor sits on an empty line right after a comment that
asks for code, or inside an empty function body. Everything else is a completion. Generations
always take the monolith path (they need the instance's context); completions go direct.
"""

from __future__ import annotations

import re

COMPLETION = "completion"
GENERATION = "generation"

_COMMENT = re.compile(r"^\s*(#|//|--|;|/\*|\*|<!--|\"\"\"|''')\s*(?P<text>.*?)\s*(\*/|-->)?$")
_FUNCTION_HEADER = re.compile(
    r"^\s*(async\s+)?(def|function|func|fn|fun|sub|proc)\b.*[:{]\s*$"
    r"|^\s*(public|private|protected|static|export|const|let|var)\b.*(\)|=>)\s*\{\s*$"
    r"|^\s*[\w<>\[\],\s\*&]+\s+\w+\s*\([^;]*\)\s*\{\s*$"
)
_CLOSING = re.compile(r"^\s*[}\)\]]*\s*;?\s*$")
_MIN_COMMENT_WORDS = 2


def detect_intent(content_above_cursor: str, content_below_cursor: str) -> str:
    """`generation` or `completion` for a cursor between the two halves of a file."""
    before_on_line = content_above_cursor.rsplit("\n", 1)[-1]
    after_on_line = content_below_cursor.split("\n", 1)[0]
    if before_on_line.strip() or after_on_line.strip():
        return COMPLETION
    previous = _last_non_blank_line(content_above_cursor.rsplit("\n", 1)[0])
    if previous is None:
        return COMPLETION
    comment = _COMMENT.match(previous)
    if comment and len(comment.group("text").split()) >= _MIN_COMMENT_WORDS:
        return GENERATION
    if _FUNCTION_HEADER.match(previous) and _body_is_empty(content_below_cursor, previous):
        return GENERATION
    return COMPLETION


def _last_non_blank_line(text: str) -> str | None:
    if "\n" not in text and not text.strip():
        return None
    for line in reversed(text.split("\n")):
        if line.strip():
            return line
    return None


def _body_is_empty(below: str, header: str) -> bool:
    """True when nothing but blank lines, closing brackets or code at the header's own
    indentation (or less) follows the cursor: the function has no body yet."""
    header_indent = len(header) - len(header.lstrip())
    for line in below.split("\n")[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        return indent <= header_indent or bool(_CLOSING.match(line))
    return True
