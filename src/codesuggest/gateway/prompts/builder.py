"""Fit the editor's content into a model's prompt budget without losing the cursor.

The prefix is cut from the left (its end is the cursor), the suffix from the right, at line
boundaries; extra context items are added whole, by priority, while they fit under their cap.
Marker strings of the model's template are removed from user content before it is measured,
so the only markers in a rendered prompt are the template's own, and they are never cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from codesuggest.gateway.prompts.budget import PromptBudget
from codesuggest.gateway.prompts.counting import chars_for, estimate_tokens

# Lower sorts first: explicit snippets beat whole files; others keep the client's order.
_PRIORITY = {"snippet": 0, "file": 1}


@dataclass(frozen=True, slots=True)
class ContextSnippet:
    name: str
    content: str
    kind: str = "file"


@dataclass(frozen=True, slots=True)
class Prompt:
    file_name: str
    language: str | None
    line_comment: str | None
    prefix: str
    suffix: str
    context: tuple[ContextSnippet, ...] = ()
    instruction: str | None = None
    truncated: bool = False
    project: str | None = None

    @property
    def estimated_tokens(self) -> int:
        parts = [self.prefix, self.suffix, self.instruction or ""]
        parts.extend(c.content for c in self.context)
        return sum(estimate_tokens(p) for p in parts)


def scrub(text: str, markers: Iterable[str]) -> str:
    for marker in markers:
        if marker and marker in text:
            text = text.replace(marker, "")
    return text


def keep_tail(text: str, max_chars: int, step: int = 0) -> str:
    """The last <= `max_chars` characters, starting at a line start where the window allows
    (else after whitespace). With `step`, the cut point is rounded up to a multiple of it so
    the window's start only moves every `step` characters as the text grows."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    start = len(text) - max_chars
    step = min(step, max_chars // 4)  # never give up more than a quarter of the window
    if step > 0:
        start = -(-start // step) * step
    if start > 0 and text[start - 1] != "\n":
        newline = text.find("\n", start)
        if newline != -1:
            start = newline + 1
        else:
            space = _next_space(text, start)
            start = space if space != -1 else start
    return text[start:]


def keep_head(text: str, max_chars: int) -> str:
    """The first <= `max_chars` characters, ending at a line end where the window allows."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    end = text.rfind("\n", 0, max_chars)
    if end != -1:
        return text[: end + 1]
    space = max(text.rfind(" ", 0, max_chars), text.rfind("\t", 0, max_chars))
    return text[:space] if space > 0 else text[:max_chars]


def _next_space(text: str, start: int) -> int:
    for i in range(start, min(len(text), start + 256)):
        if text[i] in " \t":
            return i + 1
    return -1


def _ranked(items: Sequence[ContextSnippet], file_name: str) -> list[ContextSnippet]:
    usable = [c for c in items if c.content.strip() and c.name != file_name]
    return sorted(usable, key=lambda c: _PRIORITY.get(c.kind, 2))


def build_prompt(
    *,
    file_name: str,
    language: str | None,
    line_comment: str | None,
    prefix: str,
    suffix: str,
    budget: PromptBudget,
    context: Sequence[ContextSnippet] = (),
    instruction: str | None = None,
    reserved_tokens: int = 0,
    markers: Iterable[str] = (),
    project: str | None = None,
) -> Prompt:
    """Shares (see PromptBudget): the suffix takes up to its share, context up to its share
    (both only as much as they need), the prefix the rest; what the prefix leaves unused goes
    back to a truncated suffix. `reserved_tokens` covers template markers and instructions."""
    ratio = budget.chars_per_token
    markers = tuple(markers)
    prefix = scrub(prefix, markers)
    suffix = scrub(suffix, markers)
    if instruction is not None:
        instruction = scrub(instruction, markers)
        reserved_tokens += estimate_tokens(instruction, ratio)
    snippets = [
        ContextSnippet(c.name, scrub(c.content, markers), c.kind)
        for c in _ranked(context, file_name)
    ]
    total = max(0, budget.max_tokens - reserved_tokens)

    prefix_need = estimate_tokens(prefix, ratio)
    suffix_need = estimate_tokens(suffix, ratio)
    context_need = sum(estimate_tokens(c.content, ratio) for c in snippets)
    suffix_tokens = min(suffix_need, int(total * budget.suffix_share))
    context_cap = min(context_need, int(total * budget.context_share))
    prefix_tokens = min(prefix_need, total - suffix_tokens - context_cap)
    context_tokens = min(context_cap, total - suffix_tokens - prefix_tokens)
    spare = total - suffix_tokens - prefix_tokens - context_tokens
    suffix_tokens += min(spare, suffix_need - suffix_tokens)

    kept_prefix = keep_tail(prefix, chars_for(prefix_tokens, ratio), budget.window_step)
    kept_suffix = keep_head(suffix, chars_for(suffix_tokens, ratio))
    chosen: list[ContextSnippet] = []
    room = context_tokens
    for snippet in snippets:
        cost = estimate_tokens(snippet.content, ratio)
        if cost <= room:
            chosen.append(snippet)
            room -= cost
    truncated = (
        len(kept_prefix) < len(prefix)
        or len(kept_suffix) < len(suffix)
        or len(chosen) < len(snippets)
    )
    return Prompt(
        file_name=scrub(file_name, markers),
        language=language,
        line_comment=line_comment,
        prefix=kept_prefix,
        suffix=kept_suffix,
        context=tuple(chosen),
        instruction=instruction,
        truncated=truncated,
        project=project,
    )


def shrink(prompt: Prompt, budget: PromptBudget, *, reserved_tokens: int = 0) -> Prompt:
    """`prompt` cut again to `budget` (e.g. with a chars-per-token ratio measured by the model's
    own tokenizer): the prefix keeps the cursor, the suffix its start, context what fits."""
    smaller = build_prompt(
        file_name=prompt.file_name,
        language=prompt.language,
        line_comment=prompt.line_comment,
        prefix=prompt.prefix,
        suffix=prompt.suffix,
        budget=budget,
        context=prompt.context,
        instruction=prompt.instruction,
        reserved_tokens=reserved_tokens,
        project=prompt.project,
    )
    return replace(smaller, truncated=prompt.truncated or smaller.truncated)
