"""OpenTelemetry traces of agent runs: a span per run, per retrieval, per model call, per tool call.

Exporters by setting (``agents.tracing.exporter``): ``file`` writes one JSON line per finished span
to ``$SHOPOPS_HOME/agents/traces.jsonl`` (default; ``shopops agent trace ID`` and
``GET /v1/agents/traces/{id}`` read it back), ``memory`` keeps them in the process, ``otlp`` sends
them in batches as OTLP/HTTP protobuf to a collector (``agents.tracing.otlp_endpoint``), ``none``
keeps nothing. The tracer provider is the agents' own, so the process-wide one stays untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from shopops import __version__
from shopops.core.errors import ConfigError
from shopops.core.logging import get_logger
from shopops.core.settings import AgentTracingSettings

log = get_logger(__name__)

SERVICE_NAME = "shopops-agents"


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as plain JSON (ids in hex, as OTLP/JSON writes them)."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name.lower(),
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
    }


class JsonLinesExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (one writer per process, locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        payload = b"".join(orjson.dumps(span_dict(s), default=str) + b"\n" for s in spans)
        with self._lock, self.path.open("ab") as handle:
            # One write per batch: lines of concurrent processes do not interleave mid-line.
            handle.write(payload)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _any_value(value: Any) -> Any:
    from opentelemetry.proto.common.v1 import common_pb2

    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[_any_value(v) for v in value]))
    return common_pb2.AnyValue(string_value=str(value))


def _attributes(attributes: Any) -> list[Any]:
    from opentelemetry.proto.common.v1 import common_pb2

    return [common_pb2.KeyValue(key=k, value=_any_value(v)) for k, v in dict(attributes or {}).items()]


def encode_otlp(spans: Sequence[ReadableSpan]) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` (protobuf) carrying ``spans``."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    by_resource: dict[int, tuple[Any, list[Any]]] = {}
    for span in spans:
        ctx = span.get_span_context()
        assert ctx is not None
        status_code = {
            "UNSET": trace_pb2.Status.STATUS_CODE_UNSET,
            "OK": trace_pb2.Status.STATUS_CODE_OK,
            "ERROR": trace_pb2.Status.STATUS_CODE_ERROR,
        }[span.status.status_code.name]
        proto = trace_pb2.Span(
            trace_id=ctx.trace_id.to_bytes(16, "big"),
            span_id=ctx.span_id.to_bytes(8, "big"),
            parent_span_id=span.parent.span_id.to_bytes(8, "big") if span.parent is not None else b"",
            name=span.name,
            kind=trace_pb2.Span.SpanKind.SPAN_KIND_INTERNAL,
            start_time_unix_nano=span.start_time or 0,
            end_time_unix_nano=span.end_time or 0,
            attributes=_attributes(span.attributes),
            events=[
                trace_pb2.Span.Event(
                    name=e.name, time_unix_nano=e.timestamp or 0, attributes=_attributes(e.attributes)
                )
                for e in span.events
            ],
            status=trace_pb2.Status(code=status_code, message=span.status.description or ""),
        )
        key = id(span.resource)
        if key not in by_resource:
            by_resource[key] = (span.resource, [])
        by_resource[key][1].append(proto)
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=_attributes(resource.attributes)),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="shopops.agents", version=__version__),
                        spans=protos,
                    )
                ],
            )
            for resource, protos in by_resource.values()
        ]
    )
    data: bytes = request.SerializeToString()
    return data


class OtlpHttpExporter(SpanExporter):
    """Sends spans to an OpenTelemetry collector's OTLP/HTTP endpoint (``.../v1/traces``)."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self._client = httpx.Client(timeout=timeout_s)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            response = self._client.post(
                self.endpoint, content=encode_otlp(spans), headers={"Content-Type": "application/x-protobuf"}
            )
        except httpx.HTTPError as exc:
            log.warning(
                "traces not exported: the collector cannot be reached", endpoint=self.endpoint, error=str(exc)
            )
            return SpanExportResult.FAILURE
        if response.status_code >= 300:
            log.warning(
                "traces refused by the collector", endpoint=self.endpoint, status=response.status_code
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._client.close()


class AgentTracing:
    """The agents' tracer and where its spans go."""

    def __init__(self, settings: AgentTracingSettings, home: Path) -> None:
        self.settings = settings
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
        )
        self.memory: InMemorySpanExporter | None = None
        self.file: Path | None = None
        kind = settings.exporter
        if kind == "memory":
            self.memory = InMemorySpanExporter()
            self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        elif kind == "file":
            self.file = settings.file if settings.file.is_absolute() else home / settings.file
            # Synchronous: a run's spans are on disk when its answer is returned.
            self.provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(self.file)))
        elif kind == "otlp":
            if not settings.otlp_endpoint:
                raise ConfigError(
                    "agents.tracing.exporter is otlp but no endpoint is set",
                    hint="set agents.tracing.otlp_endpoint, e.g. http://collector:4318/v1/traces",
                )
            self.provider.add_span_processor(BatchSpanProcessor(OtlpHttpExporter(settings.otlp_endpoint)))
        self.tracer: Tracer = self.provider.get_tracer("shopops.agents", __version__)

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        """The finished spans of one trace, when this process can read them back (memory or file)."""
        if self.memory is not None:
            return [d for d in map(span_dict, self.memory.get_finished_spans()) if d["trace_id"] == trace_id]
        if self.file is not None and self.file.is_file():
            needle = f'"trace_id":"{trace_id}"'.encode()
            with self.file.open("rb") as handle:
                return [orjson.loads(line) for line in handle if needle in line]
        return []

    def shutdown(self) -> None:
        self.provider.shutdown()
