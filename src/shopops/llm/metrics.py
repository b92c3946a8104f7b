"""Prometheus metrics of the gateway, per backend (exported at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "shopops_llm_requests_total",
    "Requests a backend handled (outcome: ok, failed, rejected by the upstream, skipped: circuit open)",
    ["backend", "model", "outcome"],
)
TOKENS = Counter(
    "shopops_llm_tokens_total",
    "Tokens of answered requests (kind: prompt, completion)",
    ["backend", "model", "kind"],
)
LATENCY = Histogram(
    "shopops_llm_request_duration_seconds",
    "Time a backend took to answer (to the end of the stream for streamed answers)",
    ["backend", "model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FIRST_CHUNK = Histogram(
    "shopops_llm_time_to_first_chunk_seconds",
    "Time until a streamed answer's first chunk",
    ["backend", "model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter(
    "shopops_llm_errors_total",
    "Backend failures (kind: connect, timeout, status, invalid_response, stream, internal)",
    ["backend", "kind"],
)
FALLBACKS = Counter(
    "shopops_llm_fallbacks_total",
    "Requests passed on to the next backend of the chain (reason: the failure kind or circuit_open)",
    ["backend", "reason"],
)
BREAKER = Gauge(
    "shopops_llm_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["backend"]
)
REDACTIONS = Counter(
    "shopops_llm_pii_redactions_total",
    "Personal data redacted from prompts sent to an external backend (kind: email, phone, card, column)",
    ["backend", "kind"],
)
