"""The rendered nginx edge, run for real in front of two gateway processes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from codesuggest.common.serving import DEFAULT_LIMITS
from codesuggest.edge.nginx import EdgeConfigError, NginxOptions, render, upstream_server
from edge.conftest import GatewayProcess, Nginx, nginx_options
from support.issuer import Issuer

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
USER_ID = "user-global-id-1"
ROOT = Path(__file__).resolve().parents[2]


def mint_headers(issuer: Issuer) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issuer.instance_token(INSTANCE_ID)}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Global-User-Id": USER_ID,
        "X-Gitlab-Realm": "self-managed",
        "X-Gitlab-Instance-Id": INSTANCE_ID,
    }


def user_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Global-User-Id": USER_ID,
        "X-Gitlab-Realm": "self-managed",
        "X-Gitlab-Instance-Id": INSTANCE_ID,
    }


def completion(stream: bool = False) -> dict[str, object]:
    return {
        "prompt_version": 1,
        "current_file": {
            "file_name": "app/maths.py",
            "content_above_cursor": "def add(a, b):\n    ",
            "content_below_cursor": "\n",
        },
        "stream": stream,
    }


def test_rendered_routes_and_limits() -> None:
    text = render(
        NginxOptions(
            gateways=["http://10.1.2.3:8183", "gw2:9000"], rate="7r/s", max_body="2m", listen="8443"
        )
    )
    assert "server 10.1.2.3:8183 " in text and "server gw2:9000 " in text
    assert "rate=7r/s" in text and "client_max_body_size 2m;" in text
    assert "listen 8443;" in text
    assert "proxy_pass http://codesuggest_gateway/;" in text
    assert "proxy_pass http://codesuggest_gateway/v1/code/user_access_token;" in text
    assert text.count("proxy_buffering off;") == 3 and "keepalive 64;" in text
    assert "zone=codesuggest_per_user:10m rate=7r/s" in text
    assert "zone=codesuggest_per_instance:10m rate=100r/s" in text


def test_the_edge_drops_an_idle_upstream_connection_before_the_gateway_does() -> None:
    """Else a request can go out on a connection the gateway is closing as it idles out."""
    text = render(NginxOptions(gateways=["http://a:1"]))
    upstream = text.split("upstream codesuggest_gateway {", 1)[1].split("}", 1)[0]
    idle = re.search(r"keepalive_timeout (\d+)s;", upstream)
    assert idle is not None and 0 < int(idle.group(1)) < DEFAULT_LIMITS.keep_alive_timeout
    for copy in ("deploy/nginx/nginx.conf", "deploy/kubernetes/codesuggest.yaml"):
        assert f"keepalive_timeout {idle.group(1)}s;" in (ROOT / copy).read_text(), copy


def test_posts_move_to_the_next_replica_only_where_safe() -> None:
    text = render(NginxOptions(gateways=["http://a:1", "http://b:2", "http://c:3", "http://d:4"]))
    blocks = {
        name: text.split(f"location {name} {{", 1)[1].split("}", 1)[0]
        for name in ("/ai/", "/ai/v2/", "= /auth/v1/code/user_access_token")
    }
    for name in ("/ai/v2/", "= /auth/v1/code/user_access_token"):
        assert "http_503 non_idempotent;" in blocks[name]
        assert "proxy_request_buffering on;" in blocks[name]  # the body can be sent again
        assert "proxy_next_upstream_tries 3;" in blocks[name]
    assert "non_idempotent" not in blocks["/ai/"]
    assert "zone=codesuggest_per_instance" in blocks["= /auth/v1/code/user_access_token"]
    assert "zone=codesuggest_per_user" in blocks["/ai/v2/"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (NginxOptions(gateways=[]), "--gateway"),
        (NginxOptions(gateways=["http://a:1"], rate="fast"), "--rate"),
        (NginxOptions(gateways=["http://a:1"], max_body="1 MB"), "--max-body"),
        (NginxOptions(gateways=["https://a:1/x"]), "--gateway"),
    ],
)
def test_bad_options_are_named(options: NginxOptions, named: str) -> None:
    with pytest.raises(EdgeConfigError, match=named):
        render(options)


def test_upstream_server_forms() -> None:
    assert upstream_server("http://[::1]:8183") == "[::1]:8183"
    assert upstream_server("gateway") == "gateway:80"


def test_cli_renders_a_config_nginx_accepts(nginx_bin: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "nginx.conf"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "codesuggest"),
            "edge",
            "nginx-config",
            "--gateway",
            "http://127.0.0.1:8183",
            "--gateway",
            "http://127.0.0.1:8184",
            "--listen",
            "127.0.0.1:18080",
            "--runtime-dir",
            str(tmp_path),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    check = subprocess.run([nginx_bin, "-t", "-c", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_token_mint_and_completion_through_the_edge(edge: Nginx, issuer: Issuer) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        minted = client.post("/auth/v1/code/user_access_token", headers=mint_headers(issuer))
        assert minted.status_code == 200, minted.text
        token = minted.json()["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iss"] == "gitlab-ai-gateway" and claims["sub"] == USER_ID
        reply = client.post("/ai/v2/completions", headers=user_headers(token), json=completion())
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["object"] == "text_completion" and isinstance(body["choices"], list)


def test_stream_passes_through_as_server_sent_events(edge: Nginx, issuer: Issuer) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        token = client.post("/auth/v1/code/user_access_token", headers=mint_headers(issuer)).json()[
            "token"
        ]
        with client.stream(
            "POST",
            "/ai/v2/code/completions",
            headers=user_headers(token),
            json=completion(stream=True),
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert lines, "no SSE data frames came through the edge"


def test_the_edge_adds_no_authentication(edge: Nginx) -> None:
    reply = httpx.post(edge.url + "/ai/v2/completions", json=completion())
    assert reply.status_code == 401
    assert reply.json() == {"error": "No authorization header presented"}


@pytest.mark.parametrize(
    "path", ["/", "/v2/completions", "/auth/v1/other", "/monitoring/ready", "/ai/metrics"]
)
def test_anything_else_is_404(edge: Nginx, path: str) -> None:
    assert httpx.get(edge.url + path).status_code == 404


def test_request_id_is_kept_across_the_hop(edge: Nginx) -> None:
    reply = httpx.get(edge.url + "/ai/monitoring/healthz", headers={"X-Request-ID": "edge-rid-1"})
    assert reply.status_code == 200
    assert reply.headers.get("x-request-id") == "edge-rid-1"


def test_a_replica_down_is_skipped(
    edge: Nginx, gateways: list[GatewayProcess], issuer: Issuer
) -> None:
    gateways[0].stop()
    try:
        with httpx.Client(base_url=edge.url, timeout=30) as client:
            for _ in range(4):
                minted = client.post(
                    "/auth/v1/code/user_access_token", headers=mint_headers(issuer)
                )
                assert minted.status_code == 200, minted.text
    finally:
        gateways[0].start()


def test_body_limit_and_rate_limit(nginx_bin: str, gateways: list[GatewayProcess]) -> None:
    options, runtime = nginx_options([gateways[1].url], rate="1r/m", burst=2, max_body="1k")
    nginx = Nginx(nginx_bin, options, runtime).start()
    try:
        with httpx.Client(base_url=nginx.url) as client:
            big = {"pad": "x" * 4096}
            assert client.post("/ai/v2/completions", content=json.dumps(big)).status_code == 413
            statuses = [client.get("/ai/monitoring/healthz").status_code for _ in range(5)]
        assert statuses.count(429) >= 2 and statuses[0] == 200
    finally:
        nginx.stop()
        shutil.rmtree(runtime, ignore_errors=True)
