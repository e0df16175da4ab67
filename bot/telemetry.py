"""warroom's own Prometheus metrics (``GET /metrics``), one registry per app instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _DatabaseGauges(Collector):
    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            values = self._read()
        except Exception:  # a scrape must not fail because the DB blinked; /healthz reports that
            return
        for name, value in values.items():
            family = GaugeMetricFamily(f"warroom_{name}", name.replace("_", " "))
            family.add_metric([], value)
            yield family


class Metrics:
    def __init__(self, read_gauges: Callable[[], dict[str, float]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.alerts_received = Counter("warroom_alerts_received", "Alerts received, by source and outcome",
                                       ["source", "outcome"], registry=self.registry)
        self.webhooks = Counter("warroom_webhook_requests", "Webhook requests, by source and HTTP status",
                                ["source", "status"], registry=self.registry)
        self.incidents_opened = Counter("warroom_incidents_opened", "Incidents opened", ["source"],
                                        registry=self.registry)
        self.webhook_seconds = Histogram("warroom_webhook_duration_seconds", "Webhook handling time", ["source"],
                                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                         registry=self.registry)
        self.slack_calls = Counter("warroom_slack_calls", "Slack Web API calls, by method and result",
                                   ["method", "result"], registry=self.registry)
        self.traces_received = Counter("warroom_traces_received", "Trace events, by outcome", ["outcome"],
                                       registry=self.registry)
        from bot.traces.metrics import TraceMetrics
        self.llm = TraceMetrics(self.registry)
        self.auto_verified_seconds = Histogram(
            "warroom_auto_action_verified_seconds", "Alert received to warroom's automatic action verified",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 90, 180, 600), registry=self.registry)
        self.guard_verdict_seconds = Histogram(
            "warroom_guard_verdict_seconds", "Alert received to the guard's verdict on a mitigating action",
            ["verdict"], buckets=(5, 10, 30, 60, 90, 120, 300, 600, 1800), registry=self.registry)
        if read_gauges is not None:
            self.registry.register(_DatabaseGauges(read_gauges))

    def observe_auto_verified(self, seconds: float) -> None:
        self.auto_verified_seconds.observe(seconds)

    def observe_guard_verdict(self, verdict: str, seconds: float) -> None:
        self.guard_verdict_seconds.labels(verdict).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
