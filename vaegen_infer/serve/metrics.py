"""Prometheus metrics with prometheus-client, in a registry owned by one app (no global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_ROWS = tuple(float(2**i) for i in range(13))  # 1 ... 4096


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "vaegen_requests", "HTTP requests by endpoint, method and status", ["endpoint", "method", "status"],
            registry=r,
        )  # fmt: skip
        self._latency = Histogram(
            "vaegen_request_seconds", "Time from request to last byte", ["endpoint"], buckets=_LATENCY, registry=r
        )
        self._batch_rows = Histogram(
            "vaegen_batch_rows", "Rows per graph call", ["model", "graph"], buckets=_ROWS, registry=r
        )
        self._batch_requests = Histogram(
            "vaegen_batch_requests", "Requests gathered into one graph call", ["model", "graph"], buckets=_ROWS,
            registry=r,
        )  # fmt: skip
        self._batch_seconds = Histogram(
            "vaegen_batch_seconds", "Time of one graph call", ["model", "graph"], buckets=_LATENCY, registry=r
        )
        self._queue = Gauge("vaegen_queue_depth", "Requests waiting for a graph", ["model", "graph"], registry=r)
        self.in_flight = Gauge("vaegen_requests_in_flight", "HTTP requests being answered", registry=r)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._errors = Counter("vaegen_model_errors", "Failures inside a model (HTTP 500)", ["model"], registry=r)

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        # The labelled children, looked up once per (endpoint, method, status): `labels()` takes a
        # lock and builds its key on every call, once per request on the event loop. Endpoints are
        # route templates and statuses a few codes, so this dict stays small.
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self._requests.labels(endpoint, method, str(status)), self._latency.labels(endpoint))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, model: str, graph: str, rows: int, requests: int, seconds: float) -> None:
        self._batch_rows.labels(model, graph).observe(rows)
        self._batch_requests.labels(model, graph).observe(requests)
        self._batch_seconds.labels(model, graph).observe(seconds)

    def watch_queue(self, model: str, graph: str, depth: Callable[[], int]) -> None:
        self._queue.labels(model, graph).set_function(depth)

    def model_error(self, model: str) -> None:
        self._errors.labels(model).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
