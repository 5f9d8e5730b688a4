"""Loopback model servers speaking the providers' published wire formats.

OpenAI-compatible: `POST /v1/completions` and `/v1/chat/completions`, JSON answers or SSE
`data: {...}` chunks ending with `data: [DONE]`, errors `{"error": {"message", "type", "code"}}`;
Mistral's `POST /v1/fim/completions` (chat-shaped answers); llama.cpp's `POST /infill`
(`{"content", "stop", "stop_type"}`, SSE chunks up to one with `"stop": true`); Ollama's
`POST /api/generate` (`{"response", "done", "done_reason"}`, NDJSON lines when streaming).
Anthropic: `POST /v1/messages` (requires `x-api-key` and `anthropic-version`), JSON answers or
the `message_start` ... `message_stop` event stream, errors `{"type": "error", "error": {...}}`.

A test sets `behavior` (and `text`/`chunks`/`status`/`headers`) before calling; every request
body is kept in `requests`; `disconnected` is set when a client drops a request mid-flight.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from support.servers import ServerThread


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.disconnected = threading.Event()
        self.reset()
        self.server = ServerThread(self.app())

    def reset(self) -> None:
        self.behavior = "text"  # text | error | hang | garbage | slow_stream | broken_stream
        self._text = "return a + b"
        self.chunks: list[str] = ["return", " a", " +", " b"]
        self.status = 500
        self.error_type = "server_error"
        self.headers: dict[str, str] = {}
        self.requests.clear()
        self.headers_seen.clear()
        self.disconnected.clear()

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        """The whole answer; streamed, it comes as one chunk."""
        self._text = value
        self.chunks = [value]

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeModelServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def app(self) -> FastAPI:
        raise NotImplementedError

    async def _hang(self, request: Request) -> Response:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()
        return Response(status_code=499)

    async def _take(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        self.headers_seen.append(dict(request.headers))
        return body

    def _sse(self, frames: list[str], *, slow: bool = False) -> StreamingResponse:
        async def events():  # type: ignore[no-untyped-def]
            try:
                for item in frames:
                    yield item
                while slow:  # keep the stream open until the client goes away
                    await asyncio.sleep(0.02)
                    yield ": keep-alive\n\n"
            except asyncio.CancelledError:
                self.disconnected.set()
                raise

        return StreamingResponse(events(), media_type="text/event-stream")


class FakeOpenAI(FakeModelServer):
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await self._answer(request, chat=False)

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            return await self._answer(request, chat=True)

        @app.post("/v1/fim/completions")
        async def mistral_fim(request: Request) -> Response:
            return await self._answer(request, chat=True)

        @app.post("/infill")
        async def infill(request: Request) -> Response:
            body = await self._take(request)
            if body.get("stream"):
                frames = [f"data: {json.dumps({'content': p, 'stop': False})}\n\n"
                          for p in self.chunks]  # fmt: skip
                end = {"content": "", "stop": True, "stop_type": "eos"}
                return self._sse([*frames, f"data: {json.dumps(end)}\n\n"])
            return JSONResponse({"content": self.text, "stop": True, "stop_type": "limit"})

        @app.post("/api/generate")
        async def ollama(request: Request) -> Response:
            body = await self._take(request)
            if body.get("stream", True):
                lines = [json.dumps({"model": body["model"], "response": p, "done": False})
                         for p in self.chunks]  # fmt: skip
                end = {"model": body["model"], "response": "", "done": True, "done_reason": "stop"}
                text = "\n".join([*lines, json.dumps(end)]) + "\n"
                return Response(text, media_type="application/x-ndjson")
            answer = {"model": body["model"], "response": self.text, "done": True,
                      "done_reason": "stop"}  # fmt: skip
            return JSONResponse(answer)

        return app

    def _choice(self, text: str, chat: bool, stream: bool, finish: str | None) -> dict[str, Any]:
        if chat:
            key = "delta" if stream else "message"
            message = {"role": "assistant", "content": text}
            return {"index": 0, key: message, "finish_reason": finish}
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    async def _answer(self, request: Request, chat: bool) -> Response:
        body = await self._take(request)
        obj = "chat.completion" if chat else "text_completion"
        if self.behavior == "error":
            error = {"message": "upstream says no", "type": self.error_type, "param": None,
                     "code": self.error_type}  # fmt: skip
            return JSONResponse({"error": error}, status_code=self.status, headers=self.headers)
        if self.behavior == "hang":
            return await self._hang(request)
        if self.behavior == "garbage":
            return Response("<html>bad gateway</html>", media_type="text/html")
        if body.get("stream"):
            frames = []
            for piece in self.chunks:
                chunk = {"id": "cmpl-1", "object": obj + ".chunk", "created": 1,
                         "model": body["model"],
                         "choices": [self._choice(piece, chat, True, None)]}  # fmt: skip
                frames.append(f"data: {json.dumps(chunk)}\n\n")
            if self.behavior == "broken_stream":
                frames.append("data: {not json\n\n")
            elif self.behavior != "slow_stream":
                end = self._choice("", chat, True, "stop")
                last = {"id": "cmpl-1", "object": obj + ".chunk", "created": 1,
                        "model": body["model"], "choices": [end]}  # fmt: skip
                frames += [f"data: {json.dumps(last)}\n\n", "data: [DONE]\n\n"]
            return self._sse(frames, slow=self.behavior == "slow_stream")
        return JSONResponse(
            {
                "id": "cmpl-1",
                "object": obj,
                "created": 1,
                "model": body["model"],
                "choices": [self._choice(self.text, chat, False, "stop")],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
            }
        )


class FakeAnthropic(FakeModelServer):
    api_key = "sk-ant-test"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/messages")
        async def messages(request: Request) -> Response:
            body = await self._take(request)
            if request.headers.get("x-api-key") != self.api_key:
                return self._error(401, "authentication_error", "invalid x-api-key")
            if request.headers.get("anthropic-version") != "2023-06-01":
                return self._error(400, "invalid_request_error", "anthropic-version missing")
            if self.behavior == "error":
                return self._error(self.status, self.error_type, "upstream says no", self.headers)
            if self.behavior == "hang":
                return await self._hang(request)
            if body.get("stream"):
                return self._sse(self._stream_frames(body), slow=self.behavior == "slow_stream")
            return JSONResponse(
                {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": self.text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 20, "output_tokens": 5},
                }
            )

        return app

    def _error(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)

    def _stream_frames(self, body: dict[str, Any]) -> list[str]:
        def ev(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        message = {"id": "msg_01", "type": "message", "role": "assistant", "content": [],
                   "model": body["model"], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 20, "output_tokens": 1}}  # fmt: skip
        frames = [
            ev("message_start", {"message": message}),
            ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ev("ping", {}),
        ]
        for piece in self.chunks:
            frames.append(
                ev(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                )  # fmt: skip
            )
        if self.behavior == "broken_stream":
            overloaded = {"type": "overloaded_error", "message": "Overloaded"}
            frames.append(ev("error", {"error": overloaded}))
            return frames
        if self.behavior == "slow_stream":
            return frames
        frames += [
            ev("content_block_stop", {"index": 0}),
            ev(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            ),  # fmt: skip
            ev("message_stop", {}),
        ]
        return frames
