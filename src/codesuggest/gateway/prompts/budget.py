"""How a model's prompt window is shared between prefix, suffix and extra context."""

from __future__ import annotations

from dataclasses import dataclass

from codesuggest.gateway.prompts.counting import CHARS_PER_TOKEN


@dataclass(frozen=True, slots=True)
class PromptBudget:
    """`max_tokens` is the whole prompt (markers included). The suffix may use up to
    `suffix_share` of it and extra context up to `context_share`, each only as far as it needs;
    the prefix gets the rest. The prefix window's start moves in steps of `window_step` chars so
    that successive requests share a stable prompt head (KV/prefix cache reuse).
    `chars_per_token` converts tokens to characters (a measured ratio where a tokenizer is at
    hand, else the estimate)."""

    max_tokens: int = 2048
    suffix_share: float = 0.25
    context_share: float = 0.3
    window_step: int = 1024
    chars_per_token: float = CHARS_PER_TOKEN

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.suffix_share < 1 or not 0 <= self.context_share < 1:
            raise ValueError("shares must be in [0, 1)")
        if self.suffix_share + self.context_share >= 1:
            raise ValueError("suffix_share + context_share must leave room for the prefix")
        if self.chars_per_token <= 0:
            raise ValueError("chars_per_token must be positive")
