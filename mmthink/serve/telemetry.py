"""What ``/metrics`` reports, in Prometheus' text format (prometheus-client, one registry per app)."""

from __future__ import annotations


class Telemetry:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("mmthink_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("mmthink_request_latency_seconds", "time from request to full response", ["route"],
                                 registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.ttft = Histogram("mmthink_time_to_first_token_seconds", "time from arrival to the first decoded token",
                              registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.prompt_tokens = Counter("mmthink_prompt_tokens", "prompt tokens of admitted requests", registry=r)
        self.generation_tokens = Counter("mmthink_generation_tokens", "tokens generated (all choices)", registry=r)
        self.waiting = Gauge("mmthink_requests_waiting", "requests in the queue, not decoding yet", registry=r)
        self.running = Gauge("mmthink_rows_running", "rows (choices) decoding in the batch", registry=r)

    def request(self, path: str, status: int, seconds: float) -> None:
        known = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize", "/health", "/info", "/metrics")
        route = path if path in known else "other"  # unknown paths would grow the label set without bound
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def queued(self, prompt_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)

    def finished(self, request, completion_tokens: int) -> None:
        self.generation_tokens.inc(completion_tokens)
        if request.first_token_at is not None:
            self.ttft.observe(request.first_token_at - request.arrived)

    def engine_step(self, running: int, waiting: int) -> None:
        self.running.set(running)
        self.waiting.set(waiting)

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
