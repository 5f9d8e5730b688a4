"""Bracket balance: a completion must not close what the code before it never opened, and a
multi-line completion should not stop in the middle of an open bracket."""

from __future__ import annotations

from codesuggest.gateway.postprocess.context import EditContext

PAIRS = {")": "(", "]": "[", "}": "{"}
OPENERS = frozenset(PAIRS.values())
CLOSERS = frozenset(PAIRS)
QUOTES = frozenset("'\"`")
_PREFIX_SCAN = 4000  # only the end of the prefix matters for what is still open


def open_brackets(text: str) -> list[str]:
    """Openers left unclosed in `text`, innermost last (string literals on a line skipped)."""
    stack: list[str] = []
    for line in text.split("\n"):
        quote = ""
        escaped = False
        for ch in line:
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = ""
            elif ch in QUOTES:
                quote = ch
            elif ch in OPENERS:
                stack.append(ch)
            elif ch in CLOSERS and stack and stack[-1] == PAIRS[ch]:
                stack.pop()
    return stack


def balance_brackets(text: str, ctx: EditContext) -> str:
    available = open_brackets(ctx.prefix[-_PREFIX_SCAN:])
    stack: list[str] = []
    quote = ""
    escaped = False
    balanced_line_end = -1  # offset of the last line end at depth 0
    for i, ch in enumerate(text):
        if ch == "\n":
            quote = ""
            if not stack:
                balanced_line_end = i
            continue
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in QUOTES:
            quote = ch
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
