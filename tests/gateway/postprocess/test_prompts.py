"""Prompt budget: the cursor is always kept, cuts fall on line boundaries, markers stay whole."""

from __future__ import annotations

import pytest

from codesuggest.gateway.prompts import ContextSnippet, PromptBudget, build_prompt, template_for
from codesuggest.gateway.prompts.builder import keep_head, keep_tail
from codesuggest.gateway.prompts.counting import estimate_tokens
from codesuggest.gateway.prompts.templates import TemplateError

LINES = "".join(f"line_{i} = {i}\n" for i in range(2000))


def build(prefix, suffix="", budget=None, context=(), **kw):  # type: ignore[no-untyped-def]
    return build_prompt(
        file_name="a.py", language="python", line_comment="#", prefix=prefix, suffix=suffix,
        budget=budget or PromptBudget(max_tokens=256), context=context, **kw,
    )  # fmt: skip


def test_small_input_is_untouched():
    prompt = build("x = 1\n", "y = 2\n")
    assert (prompt.prefix, prompt.suffix, prompt.truncated) == ("x = 1\n", "y = 2\n", False)


def test_prefix_keeps_the_cursor_and_starts_on_a_line():
    prefix = LINES + "def f():\n    return "
    prompt = build(prefix, LINES)
    assert prefix.endswith(prompt.prefix) and prompt.prefix.endswith("def f():\n    return ")
    assert prompt.prefix.startswith("line_") and prompt.truncated
    assert LINES.startswith(prompt.suffix) and prompt.suffix.endswith("\n")
    assert prompt.estimated_tokens <= 256
    assert estimate_tokens(prompt.suffix) <= 256 * 0.25 + 1


def test_unused_prefix_budget_goes_to_the_suffix():
    prompt = build("x = ", LINES)
    assert estimate_tokens(prompt.suffix) > 256 * 0.25


def test_window_start_is_stable_while_typing():
    budget = PromptBudget(max_tokens=512, window_step=256)
    starts = set()
    for typed in range(0, 60, 3):
        prefix = LINES[:30_000] + "value = " + "x" * typed
        prompt = build(prefix, budget=budget)
        starts.add(prefix.index(prompt.prefix))
    assert len(starts) == 1


def test_context_by_priority_within_its_cap():
    big = ContextSnippet("big.py", "b = 1\n" * 200, "file")
    small = ContextSnippet("small.py", "s = 1\n", "file")
    snippet = ContextSnippet("snip", "def helper(): ...\n", "snippet")
    same_file = ContextSnippet("a.py", "dup\n", "file")
    prompt = build("x = 1\n", context=[big, small, same_file, snippet])
    assert [c.name for c in prompt.context] == ["snip", "small.py"]


def test_markers_in_user_content_are_removed_and_template_is_whole():
    template = template_for("qwen2.5-coder")
    prompt = build("a = '<|fim_middle|>'\n" + LINES, "<|fim_suffix|>b\n", markers=template.markers,
                   reserved_tokens=template.overhead_tokens)  # fmt: skip
    text = template.render(prompt)
    assert text.count("<|fim_prefix|>") == text.count("<|fim_suffix|>") == 1
    assert text.count("<|fim_middle|>") == 1 and text.endswith("<|fim_middle|>")


def test_template_families():
    assert template_for("codellama:7b-code").name == "codellama"
    assert template_for("deepseek-coder-6.7b-base").name == "deepseek"
    assert template_for("bigcode/starcoder2-3b").name == "starcoder"
    assert template_for("gpt-3.5-turbo-instruct", "suffix") is None
    with pytest.raises(TemplateError, match="gpt-3.5-turbo-instruct"):
        template_for("gpt-3.5-turbo-instruct")
    assert template_for("anything", "codegemma").name == "codegemma"


def test_cut_helpers_never_split_a_line_when_they_can_avoid_it():
    text = "alpha beta\ngamma delta\nepsilon\n"
    assert keep_tail(text, 15) == "epsilon\n"
    assert keep_head(text, 15) == "alpha beta\n"
