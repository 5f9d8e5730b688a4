"""FIM templates per model family, checked against each family's published special tokens.

The token tables are the families' own (model cards / tokenizer configs): Qwen2.5-Coder,
StarCoder2, CodeGemma, DeepSeek-Coder, CodeLlama and Codestral (mistral-common's FIM encoding:
[SUFFIX] suffix [PREFIX] prefix). A vocabulary is modeled as the set of texts that are one
token, as a real engine's tokenizer answers it.
"""

from __future__ import annotations

import pytest

from codesuggest.gateway.prompts import ContextSnippet, Prompt
from codesuggest.gateway.prompts.templates import (
    TEMPLATES,
    TemplateError,
    template_for,
    vocabulary_template,
)

PUBLISHED = {
    "qwen": {
        "prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
        "others": {"<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|endoftext|>",
                   "<|im_start|>", "<|im_end|>"},
    },
    "starcoder": {
        "prefix": "<fim_prefix>", "suffix": "<fim_suffix>", "middle": "<fim_middle>",
        "others": {"<fim_pad>", "<repo_name>", "<file_sep>", "<|endoftext|>"},
    },
    "codegemma": {
        "prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
        "others": {"<|file_separator|>", "<eos>", "<end_of_turn>", "<start_of_turn>"},
    },
    "deepseek": {
        "prefix": "<｜fim▁begin｜>", "suffix": "<｜fim▁hole｜>", "middle": "<｜fim▁end｜>",
        "others": {"<｜end▁of▁sentence｜>", "<|EOT|>"},
    },
    "codellama": {
        "prefix": "<PRE>", "suffix": "<SUF>", "middle": "<MID>", "others": {"<EOT>"},
    },
    "codestral": {
        "prefix": "[PREFIX]", "suffix": "[SUFFIX]", "middle": "[MIDDLE]", "others": {"</s>"},
    },
}  # fmt: skip

PROMPT = Prompt(
    file_name="pkg/main.py",
    language="python",
    line_comment="#",
    prefix="def add(a, b):\n    ",
    suffix="\n\nprint(add(1, 2))\n",
    context=(ContextSnippet("pkg/util.py", "def helper():\n    return 1\n"),),
    project="group/project",
)


def vocabulary(family: str) -> set[str]:
    tokens = PUBLISHED[family]
    return {tokens["prefix"], tokens["suffix"], tokens["middle"], *tokens["others"]}


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_rendered_prompt_uses_the_published_tokens_in_order(family: str):
    tokens = PUBLISHED[family]
    template = TEMPLATES[family]
    text = template.render(PROMPT)
    pre, suf = text.index(tokens["prefix"]), text.index(tokens["suffix"])
    for marker in (tokens["prefix"], tokens["suffix"]):
        assert text.count(marker) == 1
    if family == "codestral":  # suffix first, the model writes the middle after the prefix
        assert text == f"[SUFFIX]{PROMPT.suffix}[PREFIX]" + text[pre + len("[PREFIX]") :]
        assert text.endswith(PROMPT.prefix) and "[MIDDLE]" not in text
    else:
        assert pre < suf < text.index(tokens["middle"])
        assert text.endswith(tokens["middle"])
        between = text[pre + len(tokens["prefix"]) : suf]
        assert between.strip().endswith(PROMPT.prefix.strip())
        assert text[suf + len(tokens["suffix"]) : text.index(tokens["middle"])].strip() == (
            PROMPT.suffix.strip()
        )
    # every special token the template emits is one of the family's own
    emitted = {m for m in template.markers if m in text}
    assert emitted <= vocabulary(family) | {"<PRE>", "<SUF>", "<MID>"}
    assert set(template.stop) <= vocabulary(family)


@pytest.mark.parametrize("family", ["qwen", "starcoder", "codegemma"])
def test_file_separator_families_put_context_files_before_the_fim_part(family: str):
    template = TEMPLATES[family]
    text = template.render(PROMPT)
    sep = template.file_separator
    assert sep in vocabulary(family)
    assert text.index(f"{sep}pkg/util.py\ndef helper()") < text.index(PUBLISHED[family]["prefix"])
    assert f"{sep}pkg/main.py\n{PUBLISHED[family]['prefix']}" in text
    if template.repo_name:
        assert text.startswith(f"{template.repo_name}group/project\n")


@pytest.mark.parametrize("family", ["deepseek", "codellama", "codestral"])
def test_families_without_file_tokens_get_context_inside_the_prefix_part(family: str):
    text = TEMPLATES[family].render(PROMPT)
    start = text.index(PUBLISHED[family]["prefix"])
    assert text.index("# Path: pkg/util.py") > start
    assert text.index("# Path: pkg/main.py\ndef add(a, b):") > start


def test_codellama_spacing():
    text = TEMPLATES["codellama"].render(Prompt("a.py", "python", "#", "x = ", "\ny = 2\n"))
    assert text == "<PRE> x =  <SUF>\ny = 2\n <MID>"


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_vocabulary_picks_the_family_and_accepts_its_template(family: str):
    tokens = vocabulary(family)
    assert vocabulary_template("some-model.gguf", "auto", tokens.__contains__).name == family
    assert vocabulary_template("some-model.gguf", family, tokens.__contains__).name == family


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_template_without_its_tokens_in_the_vocabulary_is_refused(family: str):
    smollm2 = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"}
    with pytest.raises(TemplateError) as caught:
        vocabulary_template("SmolLM2-135M-Instruct", family, smollm2.__contains__)
    message = str(caught.value)
    assert "SmolLM2-135M-Instruct" in message and repr(family) in message
    assert PUBLISHED[family]["prefix"] in message
    assert vocabulary_template("SmolLM2-135M-Instruct", "auto", smollm2.__contains__).name == (
        "none"
    )


def test_model_name_chooses_among_families_with_the_same_markers():
    both = vocabulary("qwen") | vocabulary("codegemma")
    assert vocabulary_template("qwen2.5-coder-1.5b", "auto", both.__contains__).name == "qwen"
    assert vocabulary_template("codegemma-2b", "auto", both.__contains__).name == "codegemma"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("Qwen/Qwen2.5-Coder-1.5B", "qwen"),
        ("qwen2.5-coder:1.5b-base", "qwen"),
        ("bigcode/starcoder2-3b", "starcoder"),
        ("google/codegemma-2b", "codegemma"),
        ("deepseek-ai/deepseek-coder-1.3b-base", "deepseek"),
        ("codellama:7b-code", "codellama"),
        ("codestral-latest", "codestral"),
    ],
)
def test_model_names_tell_the_family(name: str, family: str):
    template = template_for(name)
    assert template is not None and template.name == family


def test_plain_template_continues_the_code_before_the_cursor():
    text = TEMPLATES["none"].render(PROMPT)
    assert text.endswith("# Path: pkg/main.py\ndef add(a, b):\n    ")
    assert PROMPT.suffix.strip() not in text
