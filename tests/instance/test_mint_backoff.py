"""The instance's answer when the edge or the gateway will not mint now (429, 503): a 503 that
carries their `Retry-After`, so the IDE waits as long as they asked (real loopback server)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from codesuggest.instance.errors import InstanceError
from codesuggest.instance.upstream import mint_user_token
from support.servers import ServerThread

ANSWERS = {
    "/limited": (429, {"Retry-After": "7"}),
    "/not-ready": (503, {"Retry-After": "5"}),
    "/bare": (503, {}),
}


@pytest.fixture(scope="module")
def edge() -> Iterator[str]:
    app = FastAPI()

    @app.post("/{name}")
    async def answer(name: str) -> JSONResponse:
        status, headers = ANSWERS[f"/{name}"]
        return JSONResponse({"detail": "not now"}, status_code=status, headers=headers)

    with ServerThread(app) as server:
        yield server.url


@pytest.mark.parametrize(
    ("path", "retry_after"), [("/limited", "7"), ("/not-ready", "5"), ("/bare", "5")]
)
async def test_a_refused_mint_is_a_503_with_retry_after(
    edge: str, path: str, retry_after: str
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InstanceError) as info:
            await mint_user_token(http, edge + path, {}, 5.0)
    refused = info.value
    assert refused.status == 503 and refused.body["error"] == "gateway_error"
    assert refused.headers["Retry-After"] == retry_after
