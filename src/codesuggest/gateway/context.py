"""Everything a running gateway holds: settings, clock, metrics, the trusted keys and its own
signer, the revoked user tokens, the completion service and the usage recorder. Loop-bound
parts start in `start()` (the app lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from codesuggest.gateway.completions.service import CompletionService
from codesuggest.gateway.fairness import Fairness
from codesuggest.gateway.metrics import GatewayMetrics
from codesuggest.gateway.providers import ProviderRegistry, build_registry
from codesuggest.gateway.revocations import Revocations, make_revocations
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.gateway.trust import TrustStore
from codesuggest.gateway.usage.events import NullRecorder, UsageRecorder
from codesuggest.gateway.usage.outbox import Outbox
from codesuggest.gateway.usage.recorder import make_recorder
from codesuggest.tokens import Clock, Signer


@dataclass
class GatewayContext:
    settings: GatewaySettings
    clock: Clock
    metrics: GatewayMetrics
    trust: TrustStore
    signer: Signer
    revocations: Revocations
    completions: CompletionService
    fairness: Fairness
    # What the routes record usage with; the started recorder once `start()` ran.
    usage: UsageRecorder = field(default_factory=NullRecorder)
    draining: bool = False
    """Set on SIGTERM: readiness says 503 while requests are still served."""
    _recorder: Outbox | NullRecorder | None = None

    @classmethod
    def build(
        cls,
        settings: GatewaySettings,
        clock: Clock,
        registry: ProviderRegistry | None = None,
    ) -> GatewayContext:
        metrics = GatewayMetrics()
        trust = TrustStore(settings, clock, metrics)
        registry = registry or build_registry(settings.completions)
        return cls(
            settings=settings,
            clock=clock,
            metrics=metrics,
            trust=trust,
            signer=Signer(trust.signing_key, settings.service_name, clock),
            revocations=make_revocations(
                clock,
                settings.user_token_lifetime + 2 * settings.leeway,
                redis_url=settings.redis_url,
                prefix=settings.redis_prefix,
                data_dir=settings.data_dir,
                sync_interval=settings.revocation_sync_interval,
            ),
            completions=CompletionService(settings.completions, registry, metrics.registry),
            fairness=Fairness(settings.fairness),
        )

    async def start(self) -> None:
        settings = self.settings
        recorder = make_recorder(
            settings.usage, data_dir=settings.data_dir, signer=self.signer, clock=self.clock
        )
        await recorder.start()
        self._recorder = self.usage = recorder
        await self.revocations.start()
        self.trust.start()
        await self.completions.registry.start()
        await self.fairness.start()

    async def aclose(self) -> None:
        await self.fairness.aclose()
        await self.completions.registry.aclose()
        if self._recorder is not None:
            await self._recorder.aclose()
            self._recorder = None
        await self.revocations.aclose()
        await self.trust.aclose()


def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.ctx
    return context


async def _context_dependency(request: Request) -> GatewayContext:
    """`get_context` as a dependency: async, so FastAPI calls it inline (a plain `def`
    dependency runs in the thread pool, a thread hop on every request)."""
    return get_context(request)


ContextDep = Annotated[GatewayContext, Depends(_context_dependency)]
