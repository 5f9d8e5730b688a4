"""Fill-in-the-middle templates per model family, and the chat form for instruction models.

Each family's markers are its published special tokens (P prefix, S suffix,
f a file name, ⏎ a newline):

- qwen (Qwen2.5-Coder):
  `<|repo_name|>r⏎<|file_sep|>f⏎...<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>`
- starcoder (StarCoder2): `<repo_name>r⏎<file_sep>f⏎...<fim_prefix>P<fim_suffix>S<fim_middle>`
- codegemma: `<|file_separator|>f⏎...<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>`
- deepseek (DeepSeek-Coder): `<｜fim▁begin｜>C P<｜fim▁hole｜>S<｜fim▁end｜>`
- codellama: `<PRE> C P <SUF>S <MID>`
- codestral: `[SUFFIX]S[PREFIX]C P` (suffix first, no middle marker)

C = context files as commented `Path:` headers, inside the prefix part for families trained
without a file separator; `none` is a plain continuation of the code before the cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from codesuggest.gateway.prompts.builder import Prompt
from codesuggest.gateway.prompts.counting import estimate_tokens


class TemplateError(ValueError):
    """A FIM template was asked for that the model cannot use (or none could be chosen)."""


@dataclass(frozen=True, slots=True)
class FimTemplate:
    """`prefix`/`suffix`/`middle` are the family's FIM markers (all empty for `none`);
    `stop` its end-of-text and separator tokens; `suffix_first` the SPM order of Codestral."""

    name: str
    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    file_separator: str | None = None
    repo_name: str | None = None
    suffix_first: bool = False

    @property
    def fim(self) -> bool:
        return bool(self.prefix)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The FIM markers that must each be one token of the model's vocabulary."""
        return tuple(m.strip() for m in (self.prefix, self.suffix, self.middle) if m.strip())

    @property
    def markers(self) -> tuple[str, ...]:
        found = (self.prefix, self.suffix, self.middle, self.file_separator, self.repo_name)
        return tuple(dict.fromkeys(m.strip() for m in (*found, *self.stop) if m and m.strip()))

    @property
    def overhead_tokens(self) -> int:
        return estimate_tokens(self.prefix + self.suffix + self.middle) + 8

    def render(self, prompt: Prompt) -> str:
        if self.file_separator:
            head, inline = self._files(prompt), ""
        else:
            head, inline = "", comment_context(prompt)
        if not self.fim:
            return f"{inline}{prompt.prefix}"
        before = f"{inline}{prompt.prefix}"
        if self.suffix_first:
            return f"{head}{self.suffix}{prompt.suffix}{self.prefix}{before}"
        return f"{head}{self.prefix}{before}{self.suffix}{prompt.suffix}{self.middle}"

    def _files(self, prompt: Prompt) -> str:
        parts = []
        if self.repo_name and prompt.project:
            parts.append(f"{self.repo_name}{prompt.project}\n")
        sep = self.file_separator
        parts.extend(f"{sep}{c.name}\n{c.content}\n" for c in prompt.context)
        if parts:
            parts.append(f"{sep}{prompt.file_name}\n")
        return "".join(parts)


def comment_context(prompt: Prompt) -> str:
    """Context files as commented headers plus content, for families without a file marker."""
    if not prompt.context or not prompt.line_comment:
        return ""
    mark = prompt.line_comment
    return "".join(f"{mark} Path: {c.name}\n{c.content}\n\n" for c in prompt.context) + (
        f"{mark} Path: {prompt.file_name}\n"
    )


TEMPLATES = {
    t.name: t
    for t in (
        FimTemplate(
            "qwen",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            ("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|repo_name|>", "<|im_start|>"),
            file_separator="<|file_sep|>",
            repo_name="<|repo_name|>",
        ),
        FimTemplate(
            "codegemma",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            ("<|file_separator|>", "<end_of_turn>", "<eos>"),
            file_separator="<|file_separator|>",
        ),
        FimTemplate(
            "starcoder",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            ("<|endoftext|>", "<file_sep>", "<repo_name>"),
            file_separator="<file_sep>",
            repo_name="<repo_name>",
        ),
        FimTemplate(
            "deepseek",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            ("<｜end▁of▁sentence｜>", "<|EOT|>"),
        ),
        FimTemplate("codellama", "<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
        FimTemplate("codestral", "[PREFIX]", "[SUFFIX]", "", ("</s>",), suffix_first=True),
        FimTemplate("none", "", "", "", ()),
    )
}
FIM_FAMILIES = tuple(name for name, t in TEMPLATES.items() if t.fim)

# Substrings of a model name -> its family (first match wins).
_NAMES = (
    ("codellama", "codellama"),
    ("code-llama", "codellama"),
    ("deepseek", "deepseek"),
    ("codegemma", "codegemma"),
    ("codestral", "codestral"),
    ("qwen", "qwen"),
    ("starcoder", "starcoder"),
)


def family_of(model: str) -> str | None:
    lowered = model.lower()
    return next((family for needle, family in _NAMES if needle in lowered), None)


def template_for(model: str, configured: str = "auto") -> FimTemplate | None:
    """The FIM template to render; None means "send `suffix` to the API and let it place it".

    `auto` goes by the model name and raises TemplateError when the name tells no family."""
    if configured == "suffix":
        return None
    if configured != "auto":
        return TEMPLATES[configured]
    family = family_of(model)
    if family is None:
        raise TemplateError(
            f"cannot tell the FIM format of model {model!r} from its name: set the template "
            f"({', '.join(TEMPLATES)}), or `suffix` for a server that places the suffix itself"
        )
    return TEMPLATES[family]


def vocabulary_template(
    model: str, configured: str, is_token: Callable[[str], bool]
) -> FimTemplate:
    """The template for a model whose vocabulary can be probed (`is_token(text)`: the text is
    one token). An explicit FIM template must have its markers in the vocabulary; `auto` takes
    the family the model's name tells if its markers are there, else the family with most of
    its tokens there, else `none` (no FIM tokens at all)."""
    if configured != "auto":
        template = TEMPLATES[configured]
        missing = [m for m in template.special_tokens if not is_token(m)]
        if missing:
            raise TemplateError(
                f"model {model!r} has no FIM tokens for template {configured!r}: its vocabulary "
                f"lacks {', '.join(missing)}; use a FIM-trained model or template 'auto'/'none'"
            )
        return template
    scores = {
        name: sum(map(is_token, TEMPLATES[name].markers))
        for name in FIM_FAMILIES
        if all(is_token(m) for m in TEMPLATES[name].special_tokens)
    }
    if not scores:
        return TEMPLATES["none"]
    named = family_of(model)
    # The family the name tells, else the one with most of its tokens in the vocabulary (Qwen
    # and CodeGemma share FIM markers and differ in their file separator).
    best = named if named in scores else max(scores, key=lambda name: scores[name])
    return TEMPLATES[best]


SYSTEM_COMPLETION = (
    "You are a code completion engine inside an editor. Reply with only the code to insert "
    "at <cursor/>, in one markdown code block: no explanation, no repetition of the code "
    "around it."
)
SYSTEM_GENERATION = (
    "You write code inside an editor. Reply with only the code to insert at <cursor/>, "
    "following the instruction, in one markdown code block and no explanation."
)
# A chat answer's code block ends here: the generation can stop.
CHAT_STOP = "\n```"


def chat_messages(prompt: Prompt, *, generation: bool) -> tuple[str, str]:
    """(system, user) for chat models (OpenAI chat API, Anthropic Messages)."""
    parts = []
    for c in prompt.context:
        parts.append(f'<file name="{c.name}">\n{c.content}\n</file>\n')
    lang = f" ({prompt.language})" if prompt.language else ""
    parts.append(f"File: {prompt.file_name}{lang}\n")
    parts.append(f"<code>\n{prompt.prefix}<cursor/>{prompt.suffix}\n</code>")
    if prompt.instruction:
        parts.append(f"\n<instruction>\n{prompt.instruction}\n</instruction>")
    system = SYSTEM_GENERATION if generation else SYSTEM_COMPLETION
    return system, "".join(parts)


CHAT_OVERHEAD_TOKENS = estimate_tokens(SYSTEM_GENERATION) + 40
