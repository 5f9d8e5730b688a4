"""One parsed completion or generation request: pick the model, build the prompt, call the model
(cancelled if the client leaves), post-process, record usage, and hand back a result
(`results.py`). Only the route (`routes/completions.py`) knows about HTTP."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Histogram
from uuid_utils import uuid4

from codesuggest.common.logs import get_logger
from codesuggest.common.model_server import shown_url
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.completions import responses, sse
from codesuggest.gateway.completions.calls import ClientGone, until_done_or_gone
from codesuggest.gateway.completions.languages import Language, detect_language
from codesuggest.gateway.completions.results import (
    Answered,
    ClientLeft,
    CompletionResult,
    InferenceFailed,
    Invalid,
    RateLimited,
    Streamed,
)
from codesuggest.gateway.completions.schemas import (
    Choice,
    CompletionRequest,
    CompletionResponse,
    GenerationRequest,
    ModelInfo,
)
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.completions.timing import measure, milliseconds
from codesuggest.gateway.completions.usage import submit_request
from codesuggest.gateway.postprocess import (
    EditContext,
    StreamingPostprocessor,
    mode_for,
    postprocess,
)
from codesuggest.gateway.prompts import ContextSnippet, Prompt, PromptBudget, build_prompt
from codesuggest.gateway.providers import (
    ModelSelectionError,
    Params,
    Provider,
    ProviderError,
    ProviderRateLimited,
    ProviderRegistry,
    ProviderTimeout,
    ProviderUnreachable,
)
from codesuggest.gateway.usage.events import UsageRecorder
from codesuggest.tokens import Clock

log = get_logger("codesuggest.gateway.completions")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the service needs to know of the HTTP request it serves."""

    caller: Caller
    usage: UsageRecorder
    clock: Clock
    request_id: str | None
    started: float  # perf_counter() at arrival: latency in usage events
    timings: dict[str, float]  # per-stage seconds, rendered as Server-Timing by the route
    disconnected: Callable[[], Awaitable[None]]  # returns when the client has left


class Plan:
    """Everything decided before the model call."""

    __slots__ = ("body", "ctx", "language", "model", "params", "prompt", "provider")

    def __init__(
        self,
        body: CompletionRequest,
        language: Language | None,
        provider: Provider,
        model: str,
        prompt: Prompt,
        params: Params,
        ctx: EditContext,
    ) -> None:
        self.body = body
        self.language = language
        self.provider = provider
        self.model = model
        self.prompt = prompt
        self.params = params
        self.ctx = ctx

    @property
    def lang(self) -> str | None:
        return self.language.name if self.language else None

    def model_info(self) -> ModelInfo:
        return ModelInfo(engine=self.provider.name, name=self.model, lang=self.lang)


class CompletionService:
    def __init__(
        self,
        settings: CompletionsSettings,
        registry: ProviderRegistry,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.budget = PromptBudget(
            max_tokens=settings.max_prompt_tokens,
            suffix_share=settings.suffix_share,
            context_share=settings.context_share,
            window_step=settings.window_step,
        )
        # Per-stage latency (parse, prompt, model, post and each post-processing stage).
        self.stage_seconds = Histogram(
            "codesuggest_gateway_completion_stage_seconds",
            "Completion request time by stage",
            ["stage"],
            registry=metrics,
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1),
        )
        self._stages: dict[str, Any] = {}

    def _observe(self, timings: dict[str, float], post_stages: dict[str, float]) -> None:
        for stage in ("parse", "prompt", "model", "post"):
            if stage in timings:
                self._stage(stage).observe(timings[stage])
        for stage, seconds in post_stages.items():
            self._stage(f"post.{stage}").observe(seconds)

    def _stage(self, stage: str) -> Any:
        """The stage's labelled histogram, looked up once (a label lookup costs more than an
        observation)."""
        child = self._stages.get(stage)
        if child is None:
            child = self._stages[stage] = self.stage_seconds.labels(stage=stage)
        return child

    async def complete(self, body: CompletionRequest, info: RequestInfo) -> CompletionResult:
        """Serve a parsed request (a `GenerationRequest` is a generation)."""
        try:
            with measure(info.timings, "prompt"):
                plan = self.plan(body, generation=isinstance(body, GenerationRequest))
        except ModelSelectionError as exc:
            error = {"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}
            return await self.refuse(info, [{**error, "input": exc.value}])
        if body.stream:
            return await self._stream(info, plan)
        return await self._complete(info, plan)

    async def refuse(self, info: RequestInfo, errors: list[dict[str, Any]]) -> Invalid:
        """A request that does not parse or names an unknown model: recorded, then refused."""
        await submit_request(info, status="error:invalid_request")
        return Invalid(errors)

    def plan(self, body: CompletionRequest, *, generation: bool) -> Plan:
        current = body.current_file
        language = detect_language(current.file_name, current.language_identifier)
        provider, model = self.registry.select(body.model_provider, body.model_name)
        instruction = None
        if isinstance(body, GenerationRequest):
            instruction = body.user_instruction or body.prompt
        prompt = build_prompt(
            file_name=current.file_name,
            language=language.name if language else None,
            line_comment=language.line_comment if language else None,
            prefix=current.content_above_cursor,
            suffix=current.content_below_cursor,
            budget=self.budget,
            context=[ContextSnippet(c.name, c.content, c.type) for c in body.context],
            instruction=instruction,
            reserved_tokens=provider.reserved_tokens(model),
            markers=provider.markers(model),
            project=body.project_path,
        )
        mode = mode_for(current.content_above_cursor, generation=generation)
        s = self.settings
        params = Params(
            max_tokens=s.generation_max_tokens if generation else s.completion_max_tokens,
            temperature=s.temperature,
            mode=mode,
        )
        ctx = EditContext(
            prefix=current.content_above_cursor,
            suffix=current.content_below_cursor,
            line_comment=prompt.line_comment,
            mode=mode,
            max_lines=s.max_completion_lines,
        )
        return Plan(body, language, provider, model, prompt, params, ctx)

    async def _complete(self, info: RequestInfo, plan: Plan) -> CompletionResult:
        call = plan.provider.complete(plan.prompt, plan.model, plan.params)
        timings = info.timings
        try:
            with measure(timings, "model"):
                completion = await until_done_or_gone(
                    info.disconnected, call, self.settings.request_timeout
                )
            with measure(timings, "post"):
                processed = postprocess(completion.text, plan.ctx)
            text = processed.text
        except ClientGone:
            await self._record(info, plan, "error:cancelled", 0)
            return ClientLeft()
        except ProviderError as exc:
            _log_failure("model call failed", plan.provider, exc)
            await self._record(info, plan, f"error:{exc.kind}", 0)
            return _failure(exc)
        except BaseException:
            await self._record(info, plan, "error:internal", 0)
            raise
        # The event is committed by the outbox's writer while the answer is serialized here;
        # the answer leaves only once the event is durable.
        with measure(timings, "answer"):
            recorded = self._submit(info, plan, "served" if text else "empty", len(text))
            answer = CompletionResponse(
                id=uuid4().hex,
                created=int(info.clock.now()),
                model=plan.model_info(),
                choices=[Choice(text=text)] if text else [],
            )
            encoded = answer.model_dump_json()
            await recorded
        return Answered(
            answer, encoded, functools.partial(self._observe, timings, processed.timings)
        )

    def _submit(self, info: RequestInfo, plan: Plan, status: str, chars: int) -> Awaitable[None]:
        """Start recording this request's events (see `submit_request`)."""
        return submit_request(
            info,
            status=status,
            telemetry=plan.body.telemetry,
            language=plan.lang,
            provider=plan.provider.name,
            model=plan.model,
            latency_ms=(time.perf_counter() - info.started) * 1000,
            suggestion_chars=chars,
        )

    async def _record(self, info: RequestInfo, plan: Plan, status: str, chars: int) -> None:
        await self._submit(info, plan, status, chars)

    async def _stream(self, info: RequestInfo, plan: Plan) -> CompletionResult:
        """Wait for the first chunk (so early failures still get 429/503), then stream SSE."""
        chunks = plan.provider.stream(plan.prompt, plan.model, plan.params)
        deadline = time.perf_counter() + self.settings.request_timeout
        first: str | None = None
        try:
            with measure(info.timings, "model"):
                first = await until_done_or_gone(
                    info.disconnected, _first(chunks), self.settings.request_timeout
                )
        except (ClientGone, ProviderError) as exc:
            if isinstance(exc, ProviderError):
                _log_failure("model stream failed", plan.provider, exc)
            await chunks.aclose()  # type: ignore[attr-defined]
            status = f"error:{exc.kind}" if isinstance(exc, ProviderError) else "error:cancelled"
            await self._record(info, plan, status, 0)
            return ClientLeft() if isinstance(exc, ClientGone) else _failure(exc)
        return Streamed(self._events(info, plan, chunks, first, deadline))

    async def _events(
        self,
        info: RequestInfo,
        plan: Plan,
        chunks: AsyncIterator[str],
        first: str | None,
        deadline: float,
    ) -> AsyncIterator[bytes]:
        post = StreamingPostprocessor(plan.ctx)
        timings = info.timings
        status = "error:cancelled"  # until the stream ends normally
        started = time.perf_counter()
        final_text = ""
        try:
            try:
                pending = [first] if first is not None else []
                piece: str | None
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    while not post.stopped:
                        if pending:
                            piece = pending.pop()
                        else:
                            piece = await anext(chunks, None)
                            if piece is None:
                                break
                        if delta := post.feed(piece):
                            yield sse.chunk(delta)
            except TimeoutError as exc:
                raise ProviderTimeout("stream exceeded the request timeout") from exc
            delta, final = post.finish()
            final_text = final.text
            self._observe(timings, final.timings)
            if delta:
                yield sse.chunk(delta)
            status = "served" if final_text else "empty"
            timings["model"] = timings.get("model", 0.0) + time.perf_counter() - started
            timings["total"] = time.perf_counter() - info.started  # up to this final event
            yield sse.frame(
                {
                    "text": final_text,
                    "model": plan.model_info().model_dump(),
                    "timings": milliseconds(timings),
                },
                event="done",
            )
        except ProviderError as exc:
            status = f"error:{exc.kind}"
            _log_failure("model stream failed", plan.provider, exc)
            detail = (
                responses.TOO_MANY
                if isinstance(exc, ProviderRateLimited)
                else responses.INFERENCE_FAILED
            )
            yield sse.frame({"detail": detail}, event="error")
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()  # type: ignore[attr-defined]
                await self._record(info, plan, status, len(final_text))


async def _first(chunks: AsyncIterator[str]) -> str | None:
    return await anext(chunks, None)


def _log_failure(event: str, provider: Provider, exc: ProviderError) -> None:
    """One warning naming the provider and, for a model server, its URL (never a key)."""
    if isinstance(exc, ProviderUnreachable):
        event = "model server unreachable"
    location = provider.location
    where = {"base_url": shown_url(location)} if location else {}
    log.warning(event, provider=provider.name, **where, error=str(exc))


def _failure(exc: ProviderError) -> RateLimited | InferenceFailed:
    if isinstance(exc, ProviderRateLimited):
        return RateLimited(exc.retry_after)
    return InferenceFailed(unreachable=isinstance(exc, ProviderUnreachable))
