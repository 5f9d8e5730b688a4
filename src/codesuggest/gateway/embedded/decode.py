"""FIM-aware greedy decoding over the global KN model mixed with the cache model."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .cache import CacheModel
from .lexer import (
    DEDENT_PREFIX,
    INDENT_PREFIX,
    STRING_PLACEHOLDER,
    indent_tokens,
    lex,
)
from .model import BOS_ID, ORDER, UNK_ID, KNModel

PREFIX_CHARS = 12_000  # prefix window lexed per request
SUFFIX_CHARS = 3_000
CONTEXT_CHARS = 4_000  # per context file
MAX_CONTEXT_FILES = 4
FIRST_MIN_P = 0.2  # abstain when the first token is less likely than this
NEXT_MIN_P = 0.3  # stop when a later token is less likely than this
PREFIX_LIMIT = 256  # candidates considered when finishing a partial token

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = frozenset(OPENERS.values())
_TAIL_OK = re.compile(r"[\s)\]}:,;'\"]*")
_IDENT_END = re.compile(r"[^\W\d]\w*\Z")
_NON_PY_COMMENT = re.compile(r"//|/\*|#|--|^\s*\*")
PYTHON_NAMES = frozenset({"python", "py", "python3"})


class _Vocab:
    """Global ids for known tokens, request-local ids (>= model size) for the rest."""

    def __init__(self, model: KNModel | None):
        self.model = model
        self.base = model.size if model is not None else 2
        self.local: dict[str, int] = {}
        self.local_text: list[str] = []

    def id(self, tok: str) -> int:
        if self.model is not None:
            i = self.model.tok2id.get(tok)
            if i is not None:
                return i
        i = self.local.get(tok)
        if i is None:
            i = self.base + len(self.local_text)
            self.local[tok] = i
            self.local_text.append(tok)
        return i

    def text(self, i: int) -> str:
        if i < self.base:
            return self.model.vocab[i] if self.model is not None else ""
        return self.local_text[i - self.base]

    def starting_with(self, prefix: str) -> list[int]:
        return [self.base + k for k, t in enumerate(self.local_text) if t.startswith(prefix)]


def _window(prefix: str) -> str:
    if len(prefix) <= PREFIX_CHARS:
        return prefix
    cut = prefix[-PREFIX_CHARS:]
    return cut[cut.find("\n") + 1 :]


def _next_line(suffix: str) -> str:
    """The first non-blank line after the cursor's line, stripped."""
    for line in suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


def _emittable(tok: str) -> bool:
    return bool(tok) and STRING_PLACEHOLDER not in tok and not tok.startswith("\x03")


def complete(
    model: KNModel | None,
    prefix: str,
    suffix: str,
    *,
    language: str = "python",
    context: Sequence[str] = (),
    mode: str = "auto",
    max_tokens: int = 48,
    max_lines: int = 1,
) -> str:
    """Text to insert at the cursor, or ``""`` to abstain. See ``docs/embedded-engine.md``."""
    if max_tokens <= 0:
        return ""
    python = language.lower() in PYTHON_NAMES
    if not python:
        model = None  # the global model is Python-only: cache model alone
    pre = _window(prefix)
    line_start = pre.rfind("\n") + 1
    cur_line = pre[line_start:]
    tail = suffix.split("\n", 1)[0]
    whole_line = not cur_line.strip()
    del mode  # the text decides; see docs (an explicit mode only names the same cases)
    if _TAIL_OK.fullmatch(tail) is None:
        return ""  # cursor in front of real code on its line: no insertion there
    if not python and _NON_PY_COMMENT.search(cur_line):
        return ""
    if _IDENT_END.search(pre) and re.match(r"\w", tail):
        return ""  # inside a word
    lexed = lex(pre)
    if lexed.ends_in_comment or lexed.ends_in_open_string:
        return ""
    tokens = lexed.tokens
    partial = ""
    if whole_line:
        if not lexed.at_line_start:
            return ""
        tokens = tokens + indent_tokens(lexed.indent, lexed.pending_ws)
        start_indent = len(lexed.pending_ws)
    else:
        start_indent = len(cur_line) - len(cur_line.lstrip())
        if lexed.pending_ws:
            partial = lexed.pending_ws
        elif tokens and _IDENT_END.search(tokens[-1]) and _IDENT_END.search(pre):
            partial = tokens[-1]
            tokens = tokens[:-1]

    vocab = _Vocab(model)
    cache_ids: list[int] = []
    for text in list(context)[:MAX_CONTEXT_FILES]:
        cache_ids += [BOS_ID] + [vocab.id(t) for t in lex(text[:CONTEXT_CHARS]).tokens]
    if suffix.strip():
        cache_ids += [BOS_ID] + [vocab.id(t) for t in lex(suffix[:SUFFIX_CHARS]).tokens]
    hist = [BOS_ID] * (ORDER - 1) + [vocab.id(t) for t in tokens]
    cache_ids += hist
    core = partial.lstrip()
    canon = None
    if core:
        # identifiers match whatever whitespace precedes them: ``def frob`` defines
        # " frob", which completes ``frob`` at the start of a line too.
        strip_ids: dict[int, int] = {}
        canon = []
        for i in cache_ids:
            c = strip_ids.get(i)
            if c is None:
                c = strip_ids[i] = vocab.id(vocab.text(i).lstrip())
            canon.append(c)
    cache = CacheModel(cache_ids, canon)
    size = model.size if model is not None else 0

    out: list[str] = []
    gen_depth = 0
    lines = 0
    indent = start_indent
    tail_closer = tail.lstrip()[:1]
    for step in range(max_tokens):
        ghist = [i if i < size else UNK_ID for i in hist[-(ORDER - 1) :]]
        ctxs = model.contexts(ghist) if model is not None else []
        levels = cache.query(hist)
        first_partial = step == 0 and bool(partial)
        if first_partial:
            pool = [cache.candidates(levels), np.asarray(vocab.starting_with(partial))]
            if model is not None:
                pool.append(model.prefix_ids(partial, PREFIX_LIMIT))
                pool.append(model.candidates(ctxs))
            if core:
                ws = partial[: len(partial) - len(core)]
                for i in np.unique(cache.seq).tolist():
                    t = vocab.text(i).lstrip()
                    if t.startswith(core):
                        pool.append(np.asarray([vocab.id(ws + t)]))
            cand = np.unique(np.concatenate(pool).astype(np.int64))
            cand = cand[[vocab.text(int(i)).startswith(partial) for i in cand]]
        else:
            pool = [cache.candidates(levels)]
            if model is not None:
                pool.append(model.candidates(ctxs))
            cand = np.unique(np.concatenate(pool).astype(np.int64))
        cand = cand[(cand != BOS_ID) & (cand != UNK_ID)]
        if not cand.size:
            break
        lam = cache.weight(levels) if model is not None else 1.0
        if first_partial and core:
            canon_cand = np.asarray([vocab.id(vocab.text(int(i)).lstrip()) for i in cand])
            pc = cache.prob(levels, canon_cand, canonical=True)
            lam = max(lam, 0.3)  # the request's own identifiers matter most here
        else:
            pc = cache.prob(levels, cand)
        if first_partial:
            pc = pc / pc.sum()
        p = lam * pc
        if model is not None:
            pg = model.prob(ctxs, cand)
            if first_partial:
                pg = pg / max(pg.sum(), 1e-12)
            p += (1.0 - lam) * pg
        best = int(np.argmax(p))
        tok_id = int(cand[best])
        tok = vocab.text(tok_id)
        if p[best] < (FIRST_MIN_P if step == 0 else NEXT_MIN_P) or not _emittable(tok):
            break
        if first_partial:
            text = tok[len(partial) :]
        else:
            text = tok
        # layout: line breaks and relative indentation
        if tok.startswith(INDENT_PREFIX):
            indent += len(tok) - len(INDENT_PREFIX)
            hist.append(tok_id)
            continue
        if tok.startswith(DEDENT_PREFIX):
            indent -= int(tok[len(DEDENT_PREFIX) :])
            if indent < start_indent:
                break  # dedent below the starting block
            hist.append(tok_id)
            continue
        if tok.endswith("\n"):
            lines += 1
            if lines >= max_lines or step == 0:
                break
            out.append(tok)
            hist.append(tok_id)
            continue
        stripped = text.strip()
        if stripped in OPENERS:
            gen_depth += 1
        elif stripped in CLOSERS:
            if gen_depth == 0 and tail_closer == stripped:
                break  # the editor already inserted this closer
            gen_depth = max(0, gen_depth - 1)
        if out and out[-1].endswith("\n"):
            out.append(" " * indent)
        out.append(text)
        hist.append(tok_id)
    result = "".join(out)
    if not result.strip():
        return ""
    first_line = (cur_line + result).split("\n", 1)[0].strip()
    if first_line and first_line == _next_line(suffix):
        return ""  # would duplicate the line that follows the cursor
    return result
