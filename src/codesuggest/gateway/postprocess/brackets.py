"""Bracket balance: a completion must not close what the code before it never opened, and a
multi-line completion should not stop in the middle of an open bracket."""

from __future__ import annotations

from collections.abc import Iterator

from codesuggest.gateway.postprocess.context import EditContext

PAIRS = {")": "(", "]": "[", "}": "{"}
OPENERS = frozenset(PAIRS.values())
CLOSERS = frozenset(PAIRS)
QUOTES = frozenset("'\"`")
_PREFIX_SCAN = 4000  # only the end of the prefix matters for what is still open


def code_chars(text: str) -> Iterator[tuple[int, str]]:
    """(offset, char) of every character outside string literals, and every newline; a
    literal never spans lines here (an unterminated one ends at the line end)."""
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if ch == "\n":
            quote = ""
            yield i, ch
        elif quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in QUOTES:
            quote = ch
        else:
            yield i, ch


def open_brackets(text: str) -> list[str]:
    """Openers left unclosed in `text`, innermost last (string literals on a line skipped)."""
    stack: list[str] = []
    for _, ch in code_chars(text):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack


def balance_brackets(text: str, ctx: EditContext) -> str:
    available = open_brackets(ctx.prefix[-_PREFIX_SCAN:])
    stack: list[str] = []
    balanced_line_end = -1  # offset of the last line end at depth 0
    for i, ch in code_chars(text):
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
            elif available and available[-1] == PAIRS[ch]:
                available.pop()
            else:
                return text[:i].rstrip()  # closes something the code never opened
    if stack and "\n" in text and balanced_line_end > 0:
        return text[:balanced_line_end]
    return text
