"""Prometheus metrics of the service: requests, latency histogram, batch sizes, queue depth."""

from __future__ import annotations


class ServiceMetrics:
    """Its own registry, so several apps in one process (tests) don't clash."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        # `path` is a route template ("/v2/rerank", or "unmatched"), never the raw path: a client trying
        # random paths must not grow the label set (and /metrics with it) without bound
        self.requests = Counter("rerankforge_requests", "HTTP requests by route and status code",
                                ["path", "status"], registry=self.registry)
        self.latency = Histogram("rerankforge_request_seconds", "Request latency by route", ["path"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.batch_pairs = Histogram("rerankforge_batch_pairs", "Pairs scored per dynamic batch",
                                     buckets=(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
                                     registry=self.registry)
        self.batch_requests = Histogram("rerankforge_batch_requests", "Requests merged per dynamic batch",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.batch_seconds = Histogram("rerankforge_batch_seconds", "Model time per dynamic batch",
                                       registry=self.registry)
        self.queue = Gauge("rerankforge_queue_pairs", "Pairs waiting to be scored", registry=self.registry)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def observe_batch(self, requests: int, pairs: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_pairs.observe(pairs)
        self.batch_seconds.observe(seconds)

    def render(self, queued_pairs: int) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.queue.set(queued_pairs)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
