import pytest

from codesuggest.gateway.embedded import corpus
from codesuggest.gateway.embedded.lexer import (
    DEDENT_PREFIX,
    INDENT_PREFIX,
    STRING_PLACEHOLDER,
    detokenize,
    lex,
)


def test_whitespace_attaches_to_next_token():
    assert lex("x = foo(a, b)\n").tokens == ["x", " =", " foo", "(", "a", ",", " b", ")", "\n"]


def test_relative_indent_and_dedent():
    src = "if x:\n    y = 1\n\n    if z:\n        w\nv\n"
    toks = lex(src).tokens
    assert toks == [
        "if", " x", ":", "\n",
        INDENT_PREFIX + "    ", "y", " =", " 1", "\n",
        "\n",
        "if", " z", ":", "\n",
        INDENT_PREFIX + "    ", "w", "\n",
        DEDENT_PREFIX + "8", "v", "\n",
    ]  # fmt: skip
    assert detokenize(toks) == src


def test_comments_dropped_and_long_strings_collapsed():
    src = 'x = 1  # set x\n# a whole comment line\ny = "%s"\n' % ("a" * 60)
    toks = lex(src).tokens
    assert toks == ["x", " =", " 1", "\n", "y", " =", " " + STRING_PLACEHOLDER, "\n"]
    assert lex('s = """doc\nstring"""\n').tokens == ["s", " =", " " + STRING_PLACEHOLDER, "\n"]
    assert lex("s = 'short'\n").tokens == ["s", " =", " 'short'", "\n"]


def test_end_state_flags():
    assert lex("x = 1  # the ans").ends_in_comment
    assert not lex("x = 1  # c\ny").ends_in_comment
    assert lex("name = 'hello wor").ends_in_open_string
    assert lex('def f():\n    """Docstr').ends_in_open_string
    assert not lex("name = 'hello' ").ends_in_open_string
    assert lex("x = rb'\\'").ends_in_open_string
    res = lex("def f():\n        ")
    assert res.at_line_start and res.pending_ws == "        " and res.indent == ""


def _stdlib_comment_free_sources():
    train, held = corpus.stdlib_files()
    out = []
    for p in train + held:
        text = corpus.read_source(p)
        if text and "#" not in text:
            out.append((p, text))
    return out


def test_roundtrip_on_real_stdlib_files():
    sources = _stdlib_comment_free_sources()
    if not sources:
        pytest.skip("no stdlib source on this interpreter")
    assert len(sources) >= 10
    for path, text in sources:
        toks = lex(text, max_string=None).tokens
        assert detokenize(toks) == text, path
