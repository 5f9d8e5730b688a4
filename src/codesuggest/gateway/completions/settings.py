"""Completion settings, nested in GatewaySettings as `completions`.

Environment: `CODESUGGEST_GATEWAY_COMPLETIONS__<FIELD>`, e.g.
`CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER=openai` (see docs/models.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from codesuggest.common.model_server import shown_url

ProviderName = Literal["embedded", "openai", "anthropic", "local"]
TemplateName = Literal[
    "qwen", "starcoder", "codegemma", "deepseek", "codellama", "codestral", "none"
]
FimName = Literal["auto", "suffix", TemplateName]


class CompletionsSettings(BaseModel):
    # Which provider serves requests that do not name one.
    provider: ProviderName = "embedded"
    # A whole model call (connect, queue, generate) must finish within this many seconds.
    request_timeout: float = Field(default=10.0, gt=0)
    completion_max_tokens: int = Field(default=64, ge=1)
    generation_max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_completion_lines: int = Field(default=20, ge=1)
    # Prompt budget (tokens ~ chars / 3.5; see prompts/counting.py).
    max_prompt_tokens: int = Field(default=2048, ge=64)
    suffix_share: float = Field(default=0.25, ge=0, lt=1)
    context_share: float = Field(default=0.3, ge=0, lt=1)
    window_step: int = Field(default=1024, ge=0)

    embedded_enabled: bool = True
    embedded_cache_dir: Path | None = None  # default: the user cache dir (shared)
    embedded_workers: int = Field(default=2, ge=1)

    openai_base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    openai_api_key: SecretStr | None = None
    openai_model: str | None = None
    openai_extra_models: list[str] = []
    openai_api: Literal["completions", "chat", "infill", "fim", "ollama"] = "completions"
    openai_fim_template: FimName = "auto"
    openai_timeout: float = Field(default=10.0, gt=0)
    # A generation is cut (and what it has answered) after this many seconds; none if unset.
    openai_time_budget: float | None = Field(default=None, gt=0)
    openai_max_connections: int = Field(default=100, ge=1)

    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    anthropic_model: str | None = None
    anthropic_extra_models: list[str] = []
    anthropic_timeout: float = Field(default=30.0, gt=0)
    anthropic_max_connections: int = Field(default=100, ge=1)

    local_model_path: Path | None = None
    local_model_name: str | None = None
    local_n_ctx: int = Field(default=4096, ge=256)
    local_threads: int = Field(default=0, ge=0)
    local_parallel: int = Field(default=2, ge=1)
    local_fim_template: Literal["auto", TemplateName] = "auto"
    # A local generation is cut (and what it has answered) after this many seconds.
    local_time_budget: float = Field(default=4.0, gt=0)

    def describe(self) -> str:
        """Which provider serves requests that name none, and where (never a key)."""
        if self.provider == "openai":
            url = shown_url(self.openai_base_url or "(no OPENAI_BASE_URL)")
            return f"openai at {url} ({self.openai_api} API), model {self.openai_model}"
        if self.provider == "anthropic":
            return (
                f"anthropic at {shown_url(self.anthropic_base_url)}, model {self.anthropic_model}"
            )
        if self.provider == "local":
            return f"local GGUF {self.local_model_path}"
        return "embedded engine (built in, offline)"
