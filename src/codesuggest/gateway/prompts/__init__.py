"""Prompt building: a token budget per model, truncation that keeps the cursor, FIM templates."""

from codesuggest.gateway.prompts.budget import PromptBudget
from codesuggest.gateway.prompts.builder import ContextSnippet, Prompt, build_prompt
from codesuggest.gateway.prompts.templates import FimTemplate, chat_messages, template_for

__all__ = [
    "ContextSnippet",
    "FimTemplate",
    "Prompt",
    "PromptBudget",
    "build_prompt",
    "chat_messages",
    "template_for",
]
