"""Prometheus metrics for one adapter (``<mount>/metrics`` when ``metrics_path`` is set).

The server keeps plain counters as it works (:class:`faye.proxy.Stats`, the server's
``limit_hits``, the adapter's ``open_connections``); this collector reads them when
scraped, so an unscraped server pays for nothing but integer increments. Each adapter
has a registry of its own, with Python's GC and process collectors.
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
        stats = proxy.stats
        for name, help_text, value in (
            ("faye_handshakes", "Clients created by handshakes in this process", stats.handshakes),
            (
                "faye_client_closes",
                "Clients gone (disconnected or expired), seen here",
                stats.closes,
            ),
            ("faye_subscribes", "New subscriptions made through this process", stats.subscribes),
            ("faye_unsubscribes", "Subscriptions removed through this process", stats.unsubscribes),
            ("faye_publishes", "Messages published through this process", stats.publishes),
            ("faye_deliveries", "Messages written to clients by this process", stats.deliveries),
        ):
            yield CounterMetricFamily(name, help_text, value=value)

        hits = CounterMetricFamily(
            "faye_limit_hits", "Requests, messages and clients refused by a limit", labels=["limit"]
        )
        for limit, count in sorted(adapter.server.limit_hits.items()):
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
