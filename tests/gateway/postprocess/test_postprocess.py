"""Post-processing stages on the cases editors produce."""

from __future__ import annotations

import pytest

from codesuggest.gateway.postprocess import (
    EditContext,
    StreamingPostprocessor,
    mode_for,
    postprocess,
)


def ctx(prefix: str, suffix: str = "\n", *, generation: bool = False, comment: str = "#"):  # type: ignore[no-untyped-def]
    return EditContext(prefix, suffix, comment, mode_for(prefix, generation=generation), 20)


@pytest.mark.parametrize(
    "prefix, suffix, raw, expected",
    [
        # the editor's auto-closed bracket is not repeated
        ("print(", ")\n", '"hello")', '"hello"'),
        ("x = foo(a, ", ")\n", "b)", "b"),
        # the rest of the line already there
        ("total = ", " + 1\n", "a + b + 1", "a + b"),
        # mid-line: only the rest of the line
        ("result = compute(", ")\n", "data)\nprint(result)", "data"),
        # whole line: the block, cut at the dedent
        ("def add(a, b):\n    ", "\n", "return a + b\n\nprint(add(1, 2))", "return a + b"),
        # a line that opens a block keeps its body
        ("for item in items:", "\n", "\n    total += item\n    count += 1\nprint(total)",
         "\n    total += item\n    count += 1"),
        # never close what the code did not open
        ("x = [1, 2", "\n", ", 3]]", ", 3]"),
        # fences from chat models
        ("def f():\n    ", "\n", "```python\nreturn 1\n```", "return 1"),
        # trailing whitespace
        ("def f():\n    ", "\n", "return 1   \n\n", "return 1"),
        # comment-only and empty output is dropped
        ("def f():\n    ", "\n", "# TODO\n# later", ""),
        ("def f():\n    ", "\n", "   \n", ""),
        # lines the suffix already has are not repeated
        ("def f():\n    ", "\n    return x\n", "x = 1\n    return x", "x = 1"),
    ],
)  # fmt: skip
def test_completion_cases(prefix, suffix, raw, expected):
    assert postprocess(raw, ctx(prefix, suffix)).text == expected


def test_multi_line_completion_is_cut_back_to_balance():
    raw = "values = compute(\n        1,\n        2"
    assert postprocess(raw, ctx("def f():\n    ")).text == raw  # never balanced: kept
    raw = "a = 1\n    b = compute(\n        1,"
    assert postprocess(raw, ctx("def f():\n    ")).text == "a = 1"


def test_generations_are_not_cut_to_a_block():
    raw = "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"
    out = postprocess(raw, ctx("# add two numbers\n", generation=True)).text
    assert out == "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))"


def test_every_stage_is_timed():
    timings = postprocess("return 1", ctx("def f():\n    ")).timings
    assert list(timings) == ["fences", "scope", "suffix", "brackets", "whitespace", "comments"]


def test_stream_releases_whole_lines_and_stops_at_the_end_of_the_block():
    post = StreamingPostprocessor(ctx("def f():\n    "))
    sent = [post.feed("x = 1"), post.feed("\n    y ="), post.feed(" 2\n"), post.feed("print(")]
    assert sent == ["", "x = 1", "\n    y = 2", ""]
    post.feed("x)\n")
    assert post.stopped
    rest, final = post.finish()
    assert final.text == "x = 1\n    y = 2" and rest == ""


def test_stream_holds_comments_until_code():
    post = StreamingPostprocessor(ctx("def f():\n    "))
    assert post.feed("# first\n") == ""
    assert post.feed("    return 1\n") == "# first\n    return 1"


def test_brace_block_keeps_its_closing_bracket():
    c = EditContext("function f() {", "\n", "//", "mid_line", 20)
    raw = "\n  return 1;\n}\nconsole.log(f());"
    assert postprocess(raw, c).text == "\n  return 1;\n}"


@pytest.mark.parametrize(
    "prefix, raw, expected",
    [
        # brackets inside string literals of the prefix are not open brackets
        ('log("(")\nx = [1, ', "2])", "2]"),
        ("s = 'a[b'\nt = (", "1, 2))", "1, 2)"),
        # an escaped quote does not end the literal; a line end does
        ('s = "\\"("\nf(', "1))", "1)"),
        ('s = "unterminated (\nf(', "1))", "1)"),
        # an escape just before a line end does not reach into the next line
        ('s = "x\\\ny = "\\"(\n', "1)", "1"),
    ],
)
def test_prefix_brackets_outside_string_literals(prefix, raw, expected):
    assert postprocess(raw, ctx(prefix, "")).text == expected


def test_prefix_is_scanned_only_when_the_completion_closes_one_of_its_brackets(monkeypatch):
    from codesuggest.gateway.postprocess import brackets

    scans: list[str] = []
    real = brackets.open_brackets
    monkeypatch.setattr(brackets, "open_brackets", lambda text: scans.append(text) or real(text))
    prefix = "def total(items):\n    return sum(\n        "
    assert postprocess("price(item) for item in items", ctx(prefix, "")).text == (
        "price(item) for item in items"
    )
    assert scans == []
    assert postprocess("x for x in items)\nprint(1)", ctx(prefix, "")).text == "x for x in items)"
    assert len(scans) == 1
