"""The providers this gateway is configured to serve, and per-request selection among them."""

from __future__ import annotations

from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.prompts import PromptBudget
from codesuggest.gateway.providers.anthropic import AnthropicProvider
from codesuggest.gateway.providers.base import Provider
from codesuggest.gateway.providers.embedded import EmbeddedProvider
from codesuggest.gateway.providers.local import LocalProvider
from codesuggest.gateway.providers.openai import OpenAIProvider

# Names GitLab clients use for an OpenAI-compatible proxy.
ALIASES = {"litellm": "openai"}


class ModelSelectionError(ValueError):
    """An unknown `model_provider` / `model_name`; `field` names the request field."""

    def __init__(self, field: str, message: str, value: str | None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class ProviderRegistry:
    def __init__(self, providers: list[Provider], default: str) -> None:
        self.providers = {p.name: p for p in providers}
        if default not in self.providers:
            raise ValueError(f"default provider {default!r} is not configured")
        self.default = default

    def select(self, provider: str | None, model: str | None) -> tuple[Provider, str]:
        """The provider and model for a request; either may be omitted (gateway default)."""
        if provider:
            chosen = self.providers.get(ALIASES.get(provider, provider))
            if chosen is None:
                served = ", ".join(sorted(self.providers))
                raise ModelSelectionError(
                    "model_provider",
                    f"unknown model provider; this gateway serves: {served}",
                    provider,
                )
        else:
            chosen = self.providers[self.default]
        if not model:
            return chosen, chosen.default_model
        if model not in chosen.models:
            served = ", ".join(chosen.models)
            raise ModelSelectionError(
                "model_name", f"unknown model for {chosen.name}; it serves: {served}", model
            )
        return chosen, model

    def loading(self) -> list[str]:
        """Providers that cannot serve yet."""
        return [name for name, p in self.providers.items() if not p.ready]

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.start()

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


def build_registry(settings: CompletionsSettings) -> ProviderRegistry:
    """Every provider whose settings are complete; the default must be one of them."""
    s = settings
    providers: list[Provider] = []
    if s.embedded_enabled:
        providers.append(EmbeddedProvider(s.embedded_cache_dir, workers=s.embedded_workers))
    if s.openai_base_url:
        if not s.openai_model:
            raise ValueError("COMPLETIONS__OPENAI_MODEL is required with OPENAI_BASE_URL")
        providers.append(
            OpenAIProvider(
                base_url=s.openai_base_url,
                models=(s.openai_model, *s.openai_extra_models),
                api_key=_secret(s.openai_api_key),
                api=s.openai_api,
                fim_template=s.openai_fim_template,
                timeout=s.openai_timeout,
                time_budget=s.openai_time_budget,
                max_connections=s.openai_max_connections,
            )
        )
    if s.anthropic_api_key is not None:
        if not s.anthropic_model:
            raise ValueError("COMPLETIONS__ANTHROPIC_MODEL is required with ANTHROPIC_API_KEY")
        providers.append(
            AnthropicProvider(
                api_key=_secret(s.anthropic_api_key) or "",
                models=(s.anthropic_model, *s.anthropic_extra_models),
                base_url=s.anthropic_base_url,
                timeout=s.anthropic_timeout,
                max_connections=s.anthropic_max_connections,
            )
        )
    if s.local_model_path is not None:
        providers.append(
            LocalProvider(
                s.local_model_path,
                model_name=s.local_model_name,
                n_ctx=s.local_n_ctx,
                threads=s.local_threads,
                parallel=s.local_parallel,
                template=s.local_fim_template,
                time_budget=s.local_time_budget,
                budget=PromptBudget(
                    max_tokens=s.max_prompt_tokens,
                    suffix_share=s.suffix_share,
                    context_share=s.context_share,
                    window_step=s.window_step,
                ),
            )
        )
    return ProviderRegistry(providers, s.provider)
