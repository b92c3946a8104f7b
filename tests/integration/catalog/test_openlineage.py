"""OpenLineage events through the client's real transports: the file transport (concurrent
writers never interleave lines) and the HTTP transport against a real HTTP server started here,
with valid payloads, the API key, and nothing lost or sent twice while the server is down."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.unit.catalog.openlineage_check import check_run_event

from shopops.catalog.backends import open_catalog_store, open_lineage_transport
from shopops.catalog.model import Column, ColumnEdge, RunState
from shopops.catalog.service import CatalogService
from shopops.catalog.sync import Namespaces
from shopops.core.errors import ConfigError
from shopops.core.registry import BackendSelection


def _service(home: Path, transport: BackendSelection, **kwargs: Any) -> CatalogService:
    return CatalogService(
        open_catalog_store(BackendSelection(type="sqlite"), home),
        open_lineage_transport(transport, home),
        Namespaces(events="kafka://broker:9092", lake="file:///wh", files=f"file://{home}"),
        **kwargs,
    )


def _lines(home: Path) -> list[dict[str, Any]]:
    files = sorted((home / "catalog" / "openlineage").glob("lineage-*.ndjson"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_file_transport_writes_every_event_once_as_valid_openlineage(tmp_path: Path) -> None:
    catalog = _service(tmp_path, BackendSelection(type="file"))
    try:
        catalog.register_dataset(
            "vn.shop.orders", columns=(Column("order_id", "string"), Column("ip", "string"))
        )
        run = catalog.record_run(
            "reconciliation.export",
            ["vn.shop.orders"],
            ["reconciliation.input.vn.orders"],
            column_lineage=[
                ColumnEdge("vn.shop.orders", "order_id", "reconciliation.input.vn.orders", "order_id")
            ],
            facets={"region": "vn"},
        )
        assert run is not None
        assert run.state is RunState.COMPLETE

        def failing_job() -> None:
            with catalog.run("reconciliation.run", ["reconciliation.input.vn.orders"], []) as handle:
                handle.add_output("reconciliation.results.vn.exceptions", rows=3)
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            failing_job()
        assert catalog.store.pending_count() == 0
    finally:
        catalog.close()
    events = _lines(tmp_path)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("reconciliation.export", "START"),
        ("reconciliation.export", "COMPLETE"),
        ("reconciliation.run", "START"),
        ("reconciliation.run", "FAIL"),
    ]
    for event in events:
        check_run_event(event)
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"] == run.run_id
    assert events[1]["outputs"][0]["facets"]["columnLineage"]["fields"]["order_id"]["inputFields"][0][
        "name"
    ] == ("vn.shop.orders")
    assert events[3]["run"]["facets"]["errorMessage"]["message"] == "ValueError: boom"
    assert events[3]["outputs"][0]["name"] == "reconciliation.results.vn.exceptions"


def _write_many(home: str, n: int) -> int:
    # Wide datasets make each line much longer than one buffered write (8 KiB).
    catalog = _service(Path(home), BackendSelection(type="file"))
    try:
        columns = tuple(Column(f"column_{i:03d}", "string", description="x" * 40) for i in range(150))
        catalog.register_dataset(f"reports.wide.p{n}", columns=columns)
        for i in range(15):
            catalog.record_run(f"job.p{n}", [f"reports.wide.p{n}"], [f"reports.out.p{n}_{i}"])
        return catalog.store.pending_count()
    finally:
        catalog.close()


def test_concurrent_processes_append_whole_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(_write_many, [str(tmp_path)] * 2, range(2)))
    # Each process may send the other's events (they share the queue); once both have closed,
    # nothing is left unsent.
    store = open_catalog_store(BackendSelection(type="sqlite"), tmp_path)
    try:
        assert store.pending_count() == 0
    finally:
        store.close()
    events = _lines(tmp_path)
    assert len(events) == 2 * 15 * 2
    assert len({(e["run"]["runId"], e["eventType"]) for e in events}) == len(events)
    assert min(len(json.dumps(e)) for e in events) > 8192


class Collector:
    """A real HTTP server recording the OpenLineage events posted to it."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.status = 200
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, dict(self.headers)))
                if collector.status < 300:
                    collector.accepted.append(json.loads(body))
                self.send_response(collector.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.close()


def test_http_transport_posts_valid_events_with_the_api_key(tmp_path: Path, collector: Collector) -> None:
    selection = BackendSelection(
        type="http", url=collector.url, api_key="s3cret", headers={"X-Tenant": "shop"}
    )
    catalog = _service(tmp_path, selection)
    try:
        run = catalog.record_run("lake.ingest", ["vn.shop.orders"], ["bronze.vn__shop__orders"])
    finally:
        catalog.close()
    assert run is not None
    assert [e["eventType"] for e in collector.accepted] == ["START", "COMPLETE"]
    for event in collector.accepted:
        check_run_event(event)
        assert event["run"]["runId"] == run.run_id
    path, headers = collector.requests[0]
    assert path == "/api/v1/lineage"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Tenant"] == "shop"
    assert headers["Content-Type"] == "application/json"


def test_a_datahub_endpoint_is_a_setting(tmp_path: Path, collector: Collector) -> None:
    selection = BackendSelection(
        type="http", url=collector.url, endpoint="openapi/openlineage/api/v1/lineage"
    )
    catalog = _service(tmp_path, selection)
    try:
        catalog.record_run("lake.ingest", ["vn.shop.orders"], [])
    finally:
        catalog.close()
    assert {p for p, _ in collector.requests} == {"/openapi/openlineage/api/v1/lineage"}


def test_events_wait_while_the_server_fails_and_are_sent_once_when_it_is_back(
    tmp_path: Path, collector: Collector
) -> None:
    now = [1_000.0]
    selection = BackendSelection(type="http", url=collector.url, retries=0, timeout_s=2)
    catalog = _service(tmp_path, selection, retry_interval_s=30, clock=lambda: now[0])
    try:
        collector.status = 503
        first = catalog.record_run("reconciliation.run", ["a.b"], ["c.d"])
        assert first is not None
        assert first.state is RunState.COMPLETE
        attempts = len(collector.requests)
        assert attempts == 1  # the first failure stops the batch
        second = catalog.record_run("reconciliation.run", ["a.b"], ["c.d"])
        assert second is not None
        assert len(collector.requests) == attempts  # within the retry interval: no request at all
        assert catalog.store.pending_count() == 4
        collector.status = 200
        now[0] += 31
        report = catalog.flush()
        assert (report.sent, report.failed, report.pending) == (4, 0, 0)
        assert catalog.flush(force=True).sent == 0
    finally:
        catalog.close()
    sent = [(e["run"]["runId"], e["eventType"]) for e in collector.accepted]
    assert sent == [
        (first.run_id, "START"),
        (first.run_id, "COMPLETE"),
        (second.run_id, "START"),
        (second.run_id, "COMPLETE"),
    ]


def test_a_server_that_does_not_answer_leaves_events_queued(tmp_path: Path) -> None:
    server = Collector()
    url = server.url
    server.close()  # nothing listens there any more
    catalog = _service(tmp_path, BackendSelection(type="http", url=url, retries=0, timeout_s=1))
    try:
        assert catalog.record_run("lake.ingest", ["vn.shop.orders"], []) is not None
        report = catalog.flush(force=True)
        assert report.sent == 0
        assert report.pending == 2
        assert report.error is not None
        assert url in report.error
    finally:
        catalog.close()


def test_http_transport_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        open_lineage_transport(BackendSelection(type="http", url="marquez:5000"), tmp_path)
    with pytest.raises(ConfigError, match="url"):
        open_lineage_transport(BackendSelection(type="http"), tmp_path)
    with pytest.raises(ConfigError, match="known types: file, http, none"):
        open_lineage_transport(BackendSelection(type="kafka"), tmp_path)
