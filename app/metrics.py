"""Prometheus metrics, under Feast's names so that existing dashboards keep working.

Workers write samples to files in $PROMETHEUS_MULTIPROC_DIR (prometheus-client's
multiprocess mode). ``ladle serve --metrics`` creates that folder before the workers
start, serves the sum over all workers on its own port, and removes a dead worker's
files. With metrics off nothing is installed on the request path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from app.serve_options import ENVIRONMENT, from_environment
from registry.config import MetricsConfig

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_ENABLED_ENV = ENVIRONMENT["metrics"][0]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Families:
    """Metric objects register globally, so there is one set per process."""

    def __init__(self) -> None:
        self.requests = Counter(
            "feast_feature_server_request_total",
            "Requests by endpoint and status",
            ["endpoint", "status"],
        )
        self.latency = Histogram(
            "feast_feature_server_request_latency_seconds",
            "Request latency by endpoint",
            ["endpoint", "feature_count", "feature_view_count"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.online_requests = Counter(
            "feast_online_features_request_total", "Online feature requests"
        )
        self.entity_count = Histogram(
            "feast_online_features_entity_count",
            "Entity rows per online feature request",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.statuses = Counter(
            "ladle_online_feature_values_total",
            "Feature values served, by status",
            ["status"],
        )
        self.pushes = Counter("feast_push_request_total", "Push requests", ["push_source", "mode"])
        self.materializations = Counter(
            "feast_materialization_total",
            "Materialization runs by view and outcome",
            ["feature_view", "status"],
        )
        self.materialization_seconds = Histogram(
            "feast_materialization_duration_seconds",
            "Materialization time per view",
            ["feature_view"],
        )
        self.errors = Counter(
            "ladle_errors_total",
            "Error responses by status and error type (the `type` of the JSON error body)",
            ["status", "type"],
        )
        self.store_seconds = Histogram(
            "ladle_online_store_seconds",
            "Time spent in the online store per request, by operation",
            ["operation"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2),
        )
        self.freshness = Gauge(
            "feast_feature_freshness_seconds",
            "Seconds since the end of the feature view's most recent materialization",
            ["feature_view", "project"],
            multiprocess_mode="livemostrecent",
        )
        self.cpu = Gauge(
            "feast_feature_server_cpu_usage",
            "CPU used by the worker process, in percent of one core, over the last sample",
            multiprocess_mode="liveall",
        )
        self.memory = Gauge(
            "feast_feature_server_memory_usage",
            "Resident memory of the worker process, in percent of the machine's memory",
            multiprocess_mode="liveall",
        )
        self.resident_bytes = Gauge(
            "ladle_process_resident_memory_bytes",
            "Resident memory of the worker process, in bytes",
            multiprocess_mode="liveall",
        )
        self.transformation_errors = Counter(
            "ladle_transformation_errors_total",
            "On-demand feature view transformations that failed",
            ["feature_view"],
        )


@cache
def _families() -> _Families:
    return _Families()


class Metrics:
    """What the app records; every method is a no-op for a switched-off category."""

    def __init__(self, config: MetricsConfig) -> None:
        on = config.enabled or from_environment(os.environ).get("metrics", False)
        self.enabled = on
        self.request = on and config.request
        self.online = on and config.online_features
        self.push_on = on and config.push
        self.materialization_on = on and config.materialization
        self.transformations = on and config.transformations
        self._f = _families() if on else None

    def online_request(self, rows: int, statuses: list[list[str]]) -> None:
        if self.online and self._f:
            self._f.online_requests.inc()
            self._f.entity_count.observe(rows)
            counts: dict[str, int] = {"PRESENT": 0}
            for column in statuses:
                present = column.count("PRESENT")  # in C: the usual column is all PRESENT
                counts["PRESENT"] += present
                if present != len(column):
                    for status in column:
                        if status != "PRESENT":
                            counts[status] = counts.get(status, 0) + 1
            for status, count in counts.items():
                if count:
                    self._f.statuses.labels(status).inc(count)

    def push(self, source: str, mode: str) -> None:
        if self.push_on and self._f:
            self._f.pushes.labels(source, mode).inc()

    def materialized(self, view: str, ok: bool, seconds: float) -> None:
        if self.materialization_on and self._f:
            self._f.materializations.labels(view, "success" if ok else "failure").inc()
            self._f.materialization_seconds.labels(view).observe(seconds)

    def error(self, status: int, type: str) -> None:
        if self.request and self._f:
            self._f.errors.labels(str(status), type).inc()

    def store_time(self, operation: str, seconds: float) -> None:
        if self._f:
            self._f.store_seconds.labels(operation).observe(seconds)

    def freshness(self, project: str, ends_us: dict[str, int], now_us: int) -> None:
        if self._f:
            for view, end_us in ends_us.items():
                self._f.freshness.labels(view, project).set(max(0, now_us - end_us) / 1e6)

    def process(self, cpu_percent: float, resident_bytes: int, memory_percent: float) -> None:
        if self._f:
            self._f.cpu.set(cpu_percent)
            self._f.resident_bytes.set(resident_bytes)
            self._f.memory.set(memory_percent)

    def transformation_failed(self, view: str) -> None:
        if self.transformations and self._f:
            self._f.transformation_errors.labels(view).inc()

    def middleware(self, app: ASGIApp, endpoints: frozenset[str]) -> ASGIApp:
        """Wrap the app to count requests and time them, if request metrics are on."""
        if not (self.request and self._f):
            return app
        families = self._f

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                path = scope["path"]
                endpoint = path if path in endpoints else "other"  # bounded label values
                labels = scope.get("state", {}).get("metric_labels", ("", ""))
                families.requests.labels(endpoint, str(status)).inc()
                families.latency.labels(endpoint, *labels).observe(time.perf_counter() - started)

        return timed
