"""Prometheus metrics, in a registry of the app's own (so several apps can share a process)."""

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]


class Metrics:
    def __init__(self, ingested: Callable[[], float], clients: Callable[[], float]) -> None:
        self.registry = registry = CollectorRegistry()
        registry.register(_TradesIngested(ingested))
        ws = Gauge("memetrade_websocket_clients", "Open WebSocket connections.", registry=registry)
        ws.set_function(clients)
        self.candles_served = Counter(
            "memetrade_candles_served", "Candles returned by REST queries.", registry=registry
        )
        self.request_seconds = Histogram(
            "memetrade_http_request_duration_seconds",
            "HTTP request latency by route.",
            ("method", "route", "status"),
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        # The exchange's commands over the API (api/exchange_orders.py, api/exchange_admin.py).
        self.orders_accepted = Counter(
            "memetrade_exchange_orders_accepted",
            "Orders the exchange accepted, by type.",
            ("type",),
            registry=registry,
        )
        self.orders_refused = Counter(
            "memetrade_exchange_orders_refused",
            "Orders refused, by error code (the engine's, or the API's for unreadable input).",
            ("code",),
            registry=registry,
        )
        self.fills = Counter(
            "memetrade_exchange_fills",
            "Fills made by commands sent over the API.",
            registry=registry,
        )
        self.command_seconds = Histogram(
            "memetrade_exchange_command_duration_seconds",
            "Exchange command latency, from submit until durable in the journal (or refused).",
            ("command",),
            registry=registry,
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _TradesIngested(Collector):
    """Reads the service's own count at scrape time, so the hot path only adds integers."""

    def __init__(self, read: Callable[[], float]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "memetrade_trades_ingested", "Trades accepted and stored since start.", self._read()
        )


class MetricsMiddleware:
    """Times HTTP requests, labelled by route template (not raw path, which is unbounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )
