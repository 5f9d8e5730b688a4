"""A small, lossless-by-construction Python lexer for the embedded n-gram model.

Token conventions (every token is a plain ``str``):

* whitespace inside a line is attached to the *next* token: ``x = 1`` lexes as
  ``["x", " =", " 1"]``;
* a line break is its own token (``"\\n"``, with any trailing whitespace of the
  line in front of it); a backslash continuation is the token ``"\\\\\\n"``;
* indentation is relative: ``INDENT_PREFIX + added`` when a line is indented
  deeper than the previous non-blank line, ``DEDENT_PREFIX + str(n)`` when ``n``
  characters of indentation are removed;
* comments are dropped (a comment-only line is dropped with its line break);
* string literals longer than :data:`MAX_STRING` characters, or spanning lines,
  are collapsed to ``<whitespace> + STRING_PLACEHOLDER``; the placeholder is
  never emitted by the decoder.

For comment-free text with short strings, ``detokenize(lex(text).tokens) == text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INDENT_PREFIX = "\x01+"
DEDENT_PREFIX = "\x01-"
STRING_PLACEHOLDER = "\x02S"
BOS = "\x03BOS"
UNK = "\x03UNK"
MAX_STRING = 40

_STRING_PREFIX = r"(?:[rRbBuUfF]|[rR][bBfF]|[bBfF][rR])?"
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\f]*)
    (?:
        (?P<nl>\r?\n)
      | (?P<com>\#[^\r\n]*)
      | (?P<str>"""
    + _STRING_PREFIX
    + r"""(?:
              '''(?:[^'\\]|\\.|'(?!''))*(?:'''|\Z)
            | \"\"\"(?:[^"\\]|\\.|"(?!""))*(?:\"\"\"|\Z)
            | '(?:[^'\\\r\n]|\\.)*(?:'|(?=\r?\n)|\Z)
            | "(?:[^"\\\r\n]|\\.)*(?:"|(?=\r?\n)|\Z)
          ))
      | (?P<name>[^\W\d]\w*)
      | (?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
              |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)
      | (?P<op>\*\*=|//=|>>=|<<=|\.\.\.|->|:=|==|!=|<=|>=|\*\*|//|<<|>>|[-+*/%&|^@]=
              |[-+*/%&|^@~<>=.,:;()\[\]{}!])
      | (?P<cont>\\\r?\n)
      | (?P<other>.)
      | (?P<end>\Z)
    )
    """,
    re.VERBOSE | re.DOTALL,
)


def string_terminated(text: str) -> bool:
    """Whether a string-literal token (as matched by the lexer) is closed."""
    body = text.lstrip("rRbBuUfF")
    for q in ('"""', "'''"):
        if body.startswith(q):
            return len(body) >= 6 and body.endswith(q) and not _escaped_end(body, 3)
    if len(body) < 2 or body[-1] != body[0]:
        return False
    return not _escaped_end(body, 1)


def _escaped_end(body: str, qlen: int) -> bool:
    i = len(body) - qlen - 1
    n = 0
    while i >= 0 and body[i] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


def indent_tokens(prev: str, cur: str) -> list[str]:
    """Relative indentation tokens taking indentation ``prev`` to ``cur``."""
    if cur == prev:
        return []
    if cur.startswith(prev):
        return [INDENT_PREFIX + cur[len(prev) :]]
    if prev.startswith(cur):
        return [DEDENT_PREFIX + str(len(prev) - len(cur))]
    out = [DEDENT_PREFIX + str(len(prev))] if prev else []
    if cur:
        out.append(INDENT_PREFIX + cur)
    return out


@dataclass
class LexResult:
    tokens: list[str] = field(default_factory=list)
    indent: str = ""  # indentation of the last non-blank line
    at_line_start: bool = True  # text ends at the start of a (possibly indented) line
    pending_ws: str = ""  # whitespace after the last token, not yet attached
    ends_in_comment: bool = False
    ends_in_open_string: bool = False


def lex(text: str, *, max_string: int | None = MAX_STRING) -> LexResult:
    """Lex ``text``. See the module docstring for the token conventions.

    ``max_string=None`` keeps every string literal verbatim.
    """
    res = LexResult()
    tokens = res.tokens
    append = tokens.append
    indent = ""
    at_line_start = True
    skip_nl = False
    last_kind = ""
    last_ws = ""
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "end"  # every alternative is a named group
        ws = m.group("ws")
        if kind == "end":
            last_ws = ws
            break
        tok = m.group(kind)
        last_kind = kind
        if kind == "nl":
            if skip_nl:
                skip_nl = False
            else:
                append(ws + tok)
            at_line_start = True
            continue
        skip_nl = False
        if kind == "com":
            if at_line_start:
                skip_nl = True
            continue
        if at_line_start:
            if ws != indent:
                tokens.extend(indent_tokens(indent, ws))
                indent = ws
            ws = ""
            at_line_start = False
        if kind == "str":
            res.ends_in_open_string = not string_terminated(tok)
            if max_string is not None and ("\n" in tok or len(tok) > max_string):
                tok = STRING_PLACEHOLDER
        append(ws + tok)
    res.indent = indent
    res.at_line_start = at_line_start
    res.pending_ws = last_ws
    res.ends_in_comment = last_kind == "com" and not last_ws
    if last_kind != "str" or last_ws:
        res.ends_in_open_string = False
    return res


def detokenize(tokens: list[str], indent: str = "") -> str:
    """Inverse of :func:`lex` (placeholders become ``""``)."""
    out: list[str] = []
    pending = True  # at line start: indentation not yet written
    for tok in tokens:
        if tok.startswith(INDENT_PREFIX):
            indent += tok[len(INDENT_PREFIX) :]
            continue
        if tok.startswith(DEDENT_PREFIX):
            n = int(tok[len(DEDENT_PREFIX) :])
            indent = indent[: len(indent) - n]
            continue
        if tok == BOS:
            continue
        if tok.endswith("\n") and not tok.endswith("\\\n") and tok.strip() == "":
            out.append(tok)
            pending = True
            continue
        if pending:
            out.append(indent)
            pending = False
        if tok.endswith(STRING_PLACEHOLDER):
            tok = tok[: -len(STRING_PLACEHOLDER)] + '""'
        out.append(tok)
    return "".join(out)
