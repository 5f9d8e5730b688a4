"""Model providers behind one async interface (see base.Provider)."""

from codesuggest.gateway.providers.base import (
    Completion,
    Params,
    Provider,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
)
from codesuggest.gateway.providers.registry import (
    ModelSelectionError,
    ProviderRegistry,
    build_registry,
)

__all__ = [
    "Completion",
    "ModelSelectionError",
    "Params",
    "Provider",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRegistry",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ProviderUnreachable",
    "build_registry",
]
