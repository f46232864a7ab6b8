"""Prometheus metrics of the gate, collected from plain counters when `/metrics` is scraped.

The request path only increments integers; the prometheus-client objects are built at scrape time,
which keeps the per-request cost to a dictionary update.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from regward.gate.app import Gate

# Upper bounds of the latency histogram, in seconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GateMetrics:
    """Request counters and a latency histogram kept as plain integers."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.bucket_counts = [0] * (len(_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, method: str, status: int, seconds: float) -> None:
        key = (method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency_sum += seconds
        for index, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[index] += 1
                return
        self.bucket_counts[-1] += 1

    def render(self, gate: Gate) -> tuple[bytes, bytes]:
        """Return the exposition text and its content type."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, gate))
        return generate_latest(registry), b"text/plain; version=0.0.4; charset=utf-8"


class _Collector(Collector):
    def __init__(self, metrics: GateMetrics, gate: Gate) -> None:
        self._metrics = metrics
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "regward_http_requests",
            "HTTP requests answered by the gate",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(self._metrics.requests.items()):
            requests.add_metric([method, str(status)], count)
        yield requests

        from prometheus_client.core import HistogramMetricFamily

        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(_BUCKETS, self._metrics.bucket_counts, strict=False):
            cumulative += count
            buckets.append((str(bound), cumulative))
        cumulative += self._metrics.bucket_counts[-1]
        buckets.append(("+Inf", cumulative))
        yield HistogramMetricFamily(
            "regward_http_request_duration_seconds",
            "Time from request start to the end of the response",
            buckets=buckets,
            sum_value=self._metrics.latency_sum,
        )

        decider = self._gate.decider
        if decider is not None:
            decisions = CounterMetricFamily(
                "regward_decisions", "Pull decisions evaluated (cache misses)", labels=["verdict"]
            )
            for verdict, count in sorted(decider.stats.decisions.items()):
                decisions.add_metric([verdict], count)
            yield decisions
            yield CounterMetricFamily(
                "regward_decision_cache_hits",
                "Pulls answered from the decision cache",
                value=decider.stats.cache_hits,
            )
            yield CounterMetricFamily(
                "regward_upstream_errors",
                "Manifest fetches that failed upstream",
                value=decider.stats.upstream_errors,
            )
            yield GaugeMetricFamily(
                "regward_manifest_cache_entries",
                "Verified manifests kept in memory",
                value=len(decider.manifests),
            )
        yield CounterMetricFamily(
            "regward_audit_records_dropped",
            "Audit records lost because the queue was full",
            value=self._gate.audit.dropped,
        )
