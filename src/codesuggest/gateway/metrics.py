"""Prometheus metrics of the gateway (one registry per app, so tests can run several).

Under `gateway serve --workers N` the supervisor sets `PROMETHEUS_MULTIPROC_DIR` for its
workers: each then counts into files there (prometheus_client's multiprocess mode) and any
worker's `/metrics` answers the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._requests: dict[tuple[str, int], Counter] = {}
        self._latency: dict[str, Histogram] = {}
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
        self.revocations = Counter(
            "codesuggest_gateway_revocations",
            "Revocations of user tokens received from instances",
            registry=self.registry,
        )
        self.latency = Histogram(
            "codesuggest_gateway_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """One answered request (labeled children cached: no label lookup per request)."""
        key = (route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(route=route, status=str(status))
        counter.inc()
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.latency.labels(route=route)
        latency.observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every metric: this app's, or all workers' in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)
        return generate_latest(registry)
