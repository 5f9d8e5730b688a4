"""Fill-in-the-middle templates per model family, and the chat form for instruction models."""

from __future__ import annotations

from dataclasses import dataclass

from codesuggest.gateway.prompts.builder import Prompt
from codesuggest.gateway.prompts.counting import estimate_tokens


@dataclass(frozen=True, slots=True)
class FimTemplate:
    """`<prefix marker>{prefix}<suffix marker>{suffix}<middle marker>`; context files go in
    front, separated by `file_separator` where the family was trained with one."""

    name: str
    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    file_separator: str | None = None
    repo_name: str | None = None

    @property
    def markers(self) -> tuple[str, ...]:
        found = (self.prefix, self.suffix, self.middle, self.file_separator, self.repo_name)
        return tuple(m.strip() for m in found if m) + self.stop

    @property
    def overhead_tokens(self) -> int:
        return estimate_tokens(self.prefix + self.suffix + self.middle) + 8

    def render(self, prompt: Prompt) -> str:
        head = self._context(prompt)
        return f"{head}{self.prefix}{prompt.prefix}{self.suffix}{prompt.suffix}{self.middle}"

    def _context(self, prompt: Prompt) -> str:
        if self.file_separator:
            parts = []
            if self.repo_name and prompt.project:
                parts.append(f"{self.repo_name}{prompt.project}\n")
            sep = self.file_separator
            parts.extend(f"{sep}{c.name}\n{c.content}\n" for c in prompt.context)
            if parts:
                parts.append(f"{self.file_separator}{prompt.file_name}\n")
            return "".join(parts)
        return comment_context(prompt)


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
        FimTemplate("codellama", "<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
        FimTemplate(
            "starcoder",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            ("<|endoftext|>", "<file_sep>"),
            file_separator="<file_sep>",
        ),
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
            "deepseek",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            ("<｜end▁of▁sentence｜>", "<|EOT|>"),
        ),
    )
}

# Substrings of a model name -> its family (first match wins).
_FAMILIES = (
    ("codellama", "codellama"),
    ("code-llama", "codellama"),
    ("deepseek", "deepseek"),
    ("codegemma", "codegemma"),
    ("qwen", "qwen"),
    ("starcoder", "starcoder"),
)


def template_for(model: str, configured: str = "auto") -> FimTemplate | None:
    """The FIM template to use; None means "send `suffix` to the API and let it place it"."""
    if configured == "suffix":
        return None
    if configured != "auto":
        return TEMPLATES[configured]
    lowered = model.lower()
    for needle, family in _FAMILIES:
        if needle in lowered:
            return TEMPLATES[family]
    return None


SYSTEM_COMPLETION = (
    "You are a code completion engine inside an editor. Reply with only the code to insert "
    "at <cursor/>: no explanation, no markdown fences, no repetition of the code around it."
)
SYSTEM_GENERATION = (
    "You write code inside an editor. Reply with only the code to insert at <cursor/>, "
    "following the instruction: no explanation and no markdown fences."
)


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
