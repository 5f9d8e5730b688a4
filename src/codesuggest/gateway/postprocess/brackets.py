"""Bracket balance: a completion must not close what the code before it never opened, and a
multi-line completion should not stop in the middle of an open bracket."""

from __future__ import annotations

import re
from collections.abc import Iterator

from codesuggest.gateway.postprocess.context import EditContext

PAIRS = {")": "(", "]": "[", "}": "{"}
OPENERS = frozenset(PAIRS.values())
CLOSERS = frozenset(PAIRS)
QUOTES = frozenset("'\"`")
_PREFIX_SCAN = 4000  # only the end of the prefix matters for what is still open

# A string literal runs to its closing quote or the end of its line (escapes honored); the
# scanner steps over literals whole and stops only at brackets and line ends.
_LITERAL = "|".join(f"{q}(?:\\\\.|[^\\\\\\n{q}])*{q}?" for q in ("'", '"', "`"))
_CODE = re.compile(f"[()\\[\\]{{}}\\n]|{_LITERAL}")
_LITERALS = re.compile(_LITERAL)
_NOT_BRACKETS = re.compile(r"[^()\[\]{}]+")


def code_marks(text: str) -> Iterator[tuple[int, str]]:
    """(offset, char) of every bracket outside string literals, and of every newline."""
    for match in _CODE.finditer(text):
        ch = match.group()
        if ch[0] not in QUOTES:
            yield match.start(), ch


def open_brackets(text: str) -> list[str]:
    """Openers left unclosed in `text`, innermost last (string literals on a line skipped)."""
    stack: list[str] = []
    for ch in _NOT_BRACKETS.sub("", _LITERALS.sub("", text)):
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack


def balance_brackets(text: str, ctx: EditContext) -> str:
    """Cut at a closer that matches nothing (in the completion, or left open by the prefix),
    and a multi-line completion back to its last line at depth 0. The prefix is scanned only
    when the completion closes more than it opens, so a completion that closes nothing of the
    prefix costs a scan of its own text only."""
    available: list[str] | None = None  # the prefix's open brackets, scanned on first need
    stack: list[str] = []
    balanced_line_end = -1  # offset of the last line end at depth 0
    for i, ch in code_marks(text):
        if ch == "\n":
            if not stack:
                balanced_line_end = i
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack:
                if stack[-1] != PAIRS[ch]:
                    return text[:i].rstrip()
                stack.pop()
            else:
                if available is None:
                    available = open_brackets(ctx.prefix[-_PREFIX_SCAN:])
                if not available or available[-1] != PAIRS[ch]:
                    return text[:i].rstrip()  # closes something the code never opened
                available.pop()
    if stack and "\n" in text and balanced_line_end > 0:
        return text[:balanced_line_end]
    return text
