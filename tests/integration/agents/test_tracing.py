"""Agent traces: the file exporter reads back a run; the OTLP exporter reaches a real HTTP collector."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shopops.agents.tracing import AgentTracing
from shopops.core.errors import ConfigError
from shopops.core.settings import AgentTracingSettings


def _run(tracing: AgentTracing) -> str:
    with tracing.tracer.start_as_current_span("agent.run") as run:
        run.set_attribute("agent.name", "support")
        with tracing.tracer.start_as_current_span("agent.tool") as tool:
            tool.set_attribute("tool.name", "order_status")
            tool.set_attribute("tool.reasons", ["customer-scope"])
        return f"{run.get_span_context().trace_id:032x}"


def test_the_file_exporter_keeps_every_span_of_a_run(tmp_path: Path) -> None:
    tracing = AgentTracing(AgentTracingSettings(exporter="file"), tmp_path)
    trace_id = _run(tracing)
    _run(tracing)
    spans = tracing.spans(trace_id)
    tracing.shutdown()
    assert [s["name"] for s in spans] == ["agent.tool", "agent.run"]
    tool, run = spans
    assert tool["parent_id"] == run["span_id"]
    assert tool["attributes"] == {"tool.name": "order_status", "tool.reasons": ["customer-scope"]}
    assert (tmp_path / "agents" / "traces.jsonl").is_file()


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/traces", _Collector.received
    server.shutdown()


def test_the_otlp_exporter_sends_protobuf_to_a_collector(
    tmp_path: Path, collector: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    endpoint, received = collector
    tracing = AgentTracing(AgentTracingSettings(exporter="otlp", otlp_endpoint=endpoint), tmp_path)
    trace_id = _run(tracing)
    tracing.shutdown()  # flushes the batch
    assert received
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "shopops-agents"
    spans = resource.scope_spans[0].spans
    assert {s.name for s in spans} == {"agent.run", "agent.tool"}
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    tool = next(s for s in spans if s.name == "agent.tool")
    run = next(s for s in spans if s.name == "agent.run")
    assert tool.parent_span_id == run.span_id
    reasons = next(a for a in tool.attributes if a.key == "tool.reasons")
    assert [v.string_value for v in reasons.value.array_value.values] == ["customer-scope"]


def test_otlp_without_an_endpoint_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="otlp_endpoint"):
        AgentTracing(AgentTracingSettings(exporter="otlp"), tmp_path)
