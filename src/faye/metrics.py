"""Prometheus metrics for one adapter (``<mount>/metrics`` when ``metrics_path`` is set).

The server counts as it works into one source, its :class:`faye.events.Monitor` (events,
engine counters, limit hits), beside the adapter's ``open_connections``; this collector
reads them when scraped, so an unscraped server pays for nothing but integer increments.
Each adapter has a registry of its own, with Python's GC and process collectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faye.transport import uvicorn_http

if TYPE_CHECKING:
    from faye.adapter import ASGIAdapter

TRANSPORTS = ("websocket", "eventsource", "long-polling")


class FayeCollector(Collector):
    def __init__(self, adapter: ASGIAdapter) -> None:
        self.adapter = adapter

    def collect(self) -> Iterator[Metric]:
        adapter = self.adapter
        proxy = adapter.proxy
        counts = proxy.counts
        for name, help_text, key in (
            ("faye_handshakes", "Clients created by handshakes in this process", "handshake"),
            ("faye_client_closes", "Clients gone (disconnected or expired), seen here", "close"),
            ("faye_subscribes", "New subscriptions made through this process", "subscribe"),
            ("faye_unsubscribes", "Subscriptions removed through this process", "unsubscribe"),
            ("faye_publishes", "Messages published through this process", "publish"),
            ("faye_deliveries", "Messages written to clients by this process", "deliveries"),
            ("faye_redis_round_trips", "Calls to Redis by the engine, retries included", None),
            ("faye_redis_errors", "Calls to Redis by the engine that failed", None),
            ("faye_gc_runs", "Collections of expired clients run by this process", None),
            ("faye_gc_clients_collected", "Expired clients destroyed by those collections", None),
        ):
            yield CounterMetricFamily(name, help_text, value=counts[key or name[5:]])

        hits = CounterMetricFamily(
            "faye_limit_hits", "Requests, messages and clients refused by a limit", labels=["limit"]
        )
        for limit, count in sorted(proxy.limit_hits.items()):
            hits.add_metric([limit], count)
        for limit, count in sorted(uvicorn_http.REFUSALS.items()):
            hits.add_metric([limit], count)
        yield hits

        connections = GaugeMetricFamily(
            "faye_connections",
            "Open Bayeux connections by transport (long-polling: requests in flight)",
            labels=["transport"],
        )
        for transport in TRANSPORTS:
            connections.add_metric([transport], adapter.open_connections[transport])
        yield connections
        yield GaugeMetricFamily(
            "faye_connected_clients",
            "Clients with a held connect or a bound socket in this process",
            value=proxy.connections_held(),
        )
        yield GaugeMetricFamily(
            "faye_subscriptions",
            "Subscriptions held through this process",
            value=proxy.subscriptions_held(),
        )
        depth = getattr(proxy.backend, "queued_messages", None)
        if callable(depth):
            yield GaugeMetricFamily(
                "faye_queued_messages",
                "Messages waiting in the engine for clients without a connection",
                value=depth(),
            )


class Metrics:
    def __init__(self, adapter: ASGIAdapter) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FayeCollector(adapter))
        GCCollector(registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for, and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
