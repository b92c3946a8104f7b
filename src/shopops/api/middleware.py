"""Request metrics of the HTTP app, as a pure ASGI middleware.

Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs the rest of the app in a task
group and streams the response back through memory channels: on a sub-millisecond route that costs
more than the route. This one only wraps ``send`` to see the status.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("shopops_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "shopops_http_request_duration_seconds", "HTTP request duration", ["method", "route"]
)


class MetricsMiddleware:
    """Counts requests by method, route template and status, and times them (to the last byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # ``(method, route, status) -> (counter, histogram)`` children: a label lookup costs more
        # than the update. Route templates and statuses are few; unmatched paths share one route.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before it starts a response

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            # The router put the matched route in the scope (the same dict): label by its template.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            children = self._children.get((method, route, status))
            if children is None:
                counter = HTTP_REQUESTS.labels(method, route, str(status))
                children = (counter, HTTP_LATENCY.labels(method, route))
                self._children[(method, route, status)] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
