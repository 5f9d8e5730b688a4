"""One completion or generation request: parse, pick the model, build the prompt, call the
model (cancelled if the client leaves), post-process, answer, and record usage."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import anyio
from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Histogram
from pydantic import ValidationError
from starlette.responses import StreamingResponse

from codesuggest.common.logs import get_logger
from codesuggest.gateway.auth import Caller
from codesuggest.gateway.completions import responses, sse
from codesuggest.gateway.completions.calls import ClientGone, until_done_or_gone
from codesuggest.gateway.completions.languages import Language, detect_language
from codesuggest.gateway.completions.models import (
    Choice,
    CompletionRequest,
    CompletionResponse,
    GenerationRequest,
    ModelInfo,
)
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.completions.timing import measure, milliseconds, server_timing, timings_of
from codesuggest.gateway.completions.usage import record_request, submit_request
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
)

log = get_logger("codesuggest.gateway.completions")


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
    def __init__(self, settings: CompletionsSettings, registry: ProviderRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.budget = PromptBudget(
            max_tokens=settings.max_prompt_tokens,
            suffix_share=settings.suffix_share,
            context_share=settings.context_share,
            window_step=settings.window_step,
        )
        self.stage_seconds: Histogram | None = None

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Per-stage latency (parse, prompt, model, post and each post-processing stage)."""
        self.stage_seconds = Histogram(
            "codesuggest_gateway_completion_stage_seconds",
            "Completion request time by stage",
            ["stage"],
            registry=registry,
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1),
        )

    def _observe(self, timings: dict[str, float], post_stages: dict[str, float]) -> None:
        if self.stage_seconds is None:
            return
        for stage in ("parse", "prompt", "model", "post"):
            if stage in timings:
                self.stage_seconds.labels(stage=stage).observe(timings[stage])
        for stage, seconds in post_stages.items():
            self.stage_seconds.labels(stage=f"post.{stage}").observe(seconds)

    async def handle(self, request: Request, caller: Caller, *, generation: bool) -> Response:
        timings = timings_of(request)
        try:
            with measure(timings, "parse"):
                raw = await request.body()
                model = GenerationRequest if generation else CompletionRequest
                body = model.model_validate_json(raw)
            with measure(timings, "prompt"):
                plan = self.plan(body, generation=generation)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            return await self._refuse(request, caller, timings, errors)
        except ModelSelectionError as exc:
            error = {"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}
            return await self._refuse(request, caller, timings, [{**error, "input": exc.value}])
        if body.stream:
            return await self._stream(request, caller, plan, timings)
        return await self._complete(request, caller, plan, timings)

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

    async def _refuse(
        self, request: Request, caller: Caller, timings: dict[str, float], errors: list[Any]
    ) -> Response:
        await record_request(request, caller, status="error:invalid_request")
        return responses.invalid(errors, self._total(request, timings))

    def _total(self, request: Request, timings: dict[str, float]) -> dict[str, float]:
        started = getattr(request.state, "started", None)
        if started is not None:
            timings["total"] = time.perf_counter() - started
        return timings

    async def _complete(
        self, request: Request, caller: Caller, plan: Plan, timings: dict[str, float]
    ) -> Response:
        call = plan.provider.complete(plan.prompt, plan.model, plan.params)
        try:
            with measure(timings, "model"):
                completion = await until_done_or_gone(request, call, self.settings.request_timeout)
            with measure(timings, "post"):
                processed = postprocess(completion.text, plan.ctx)
            text = processed.text
            self._observe(timings, processed.timings)
        except ClientGone:
            await self._record(request, caller, plan, "error:cancelled", 0)
            return Response(status_code=499)  # nobody is listening any more
        except ProviderError as exc:
            log.warning("model call failed", provider=plan.provider.name, error=str(exc))
            await self._record(request, caller, plan, f"error:{exc.kind}", 0)
            self._total(request, timings)
            if isinstance(exc, ProviderRateLimited):
                return responses.rate_limited(exc.retry_after, timings)
            return responses.inference_failed(timings)
        except BaseException:
            await self._record(request, caller, plan, "error:internal", 0)
            raise
        # The event is committed by the outbox's writer while the answer is serialised here;
        # the answer leaves only once the event is durable.
        recorded = self._submit(request, caller, plan, "served" if text else "empty", len(text))
        answer = CompletionResponse(
            id=uuid.uuid4().hex,
            created=int(request.app.state.clock.now()),
            model=plan.model_info(),
            choices=[Choice(text=text)] if text else [],
        )
        response = Response(answer.model_dump_json(), media_type="application/json")
        await recorded
        self._total(request, timings)
        response.headers["Server-Timing"] = server_timing(timings)
        return response

    def _submit(
        self, request: Request, caller: Caller, plan: Plan, status: str, chars: int
    ) -> Awaitable[None]:
        """Start recording this request's events (see `submit_request`)."""
        started = getattr(request.state, "started", None)
        latency = time.perf_counter() - started if started is not None else 0.0
        return submit_request(
            request,
            caller,
            status=status,
            telemetry=plan.body.telemetry,
            language=plan.lang,
            provider=plan.provider.name,
            model=plan.model,
            latency_ms=latency * 1000,
            suggestion_chars=chars,
        )

    async def _record(
        self, request: Request, caller: Caller, plan: Plan, status: str, chars: int
    ) -> None:
        await self._submit(request, caller, plan, status, chars)

    async def _stream(
        self, request: Request, caller: Caller, plan: Plan, timings: dict[str, float]
    ) -> Response:
        """Wait for the first chunk (so early failures still get 429/503), then stream SSE."""
        chunks = plan.provider.stream(plan.prompt, plan.model, plan.params)
        deadline = time.perf_counter() + self.settings.request_timeout
        first: str | None = None
        try:
            with measure(timings, "model"):
                first = await until_done_or_gone(
                    request, _first(chunks), self.settings.request_timeout
                )
        except (ClientGone, ProviderError) as exc:
            await chunks.aclose()
            status = f"error:{exc.kind}" if isinstance(exc, ProviderError) else "error:cancelled"
            await self._record(request, caller, plan, status, 0)
            self._total(request, timings)
            if isinstance(exc, ClientGone):
                return Response(status_code=499)
            if isinstance(exc, ProviderRateLimited):
                return responses.rate_limited(exc.retry_after, timings)
            return responses.inference_failed(timings)
        self._total(request, timings)
        headers = {**sse.HEADERS, "Server-Timing": server_timing(timings)}
        events = self._events(request, caller, plan, timings, chunks, first, deadline)
        return StreamingResponse(events, media_type=sse.MEDIA_TYPE, headers=headers)

    async def _events(
        self,
        request: Request,
        caller: Caller,
        plan: Plan,
        timings: dict[str, float],
        chunks: AsyncIterator[str],
        first: str | None,
        deadline: float,
    ) -> AsyncIterator[bytes]:
        post = StreamingPostprocessor(plan.ctx)
        status = "error:cancelled"  # until the stream ends normally
        started = time.perf_counter()
        final_text = ""
        try:
            try:
                pending = [first] if first is not None else []
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
            self._total(request, timings)  # the whole request, up to this final event
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
            log.warning("model stream failed", provider=plan.provider.name, error=str(exc))
            detail = (
                responses.TOO_MANY
                if isinstance(exc, ProviderRateLimited)
                else responses.INFERENCE_FAILED
            )
            yield sse.frame({"detail": detail}, event="error")
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()  # type: ignore[attr-defined]
                await self._record(request, caller, plan, status, len(final_text))


async def _first(chunks: AsyncIterator[str]) -> str | None:
    return await anext(chunks, None)
