"""Prometheus metrics of the gateway (one registry per app, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "codesuggest_gateway_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "codesuggest_gateway_auth_failures",
            "Refused requests by reason",
            ["reason"],
            registry=self.registry,
        )
        self.key_refreshes = Counter(
            "codesuggest_gateway_key_refreshes",
            "JWKS fetches by issuer and outcome",
            ["issuer", "outcome"],
            registry=self.registry,
        )
        self.token_mints = Counter(
            "codesuggest_gateway_token_mints",
            "User tokens minted",
            ["realm"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "codesuggest_gateway_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
