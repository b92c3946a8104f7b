"""Catalog: what recording lineage costs a job, and how fast lineage trees come back.

    python bench/bench_catalog.py [--runs 300] [--jobs 400] [--json out.json]

Measured in one process, on the embedded SQLite catalog store:

- **record_run** — ``CatalogService.record_run`` of a run reading 4 topics and writing 5 tables
  with 28 column-lineage edges (the shape of ``reconciliation.export``): two OpenLineage events
  built with the client's models, stored with the run, edges and flows, and sent through the
  ``file`` transport (and, separately, the ``none`` transport);
- **baseline** — the same two events stored with ``CatalogStore.record_event`` from a payload
  built once: the store's own cost, without building events or sending them; beside it, building
  and serialising the two events with the OpenLineage client alone (where most of the rest goes);
- **lineage** — ``CatalogService.lineage(name, "both", 10)`` on a graph of ``--jobs`` jobs chained
  over ~5 datasets each, against loading its edges and flows alone (the baseline of any query).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shopops.catalog.backends import open_catalog_store, open_lineage_transport
from shopops.catalog.model import ColumnEdge, Edge, Flow, Job, Run, RunState
from shopops.catalog.port import RunEventRecord
from shopops.catalog.service import CatalogService
from shopops.catalog.sync import Namespaces
from shopops.core.logging import configure_logging
from shopops.core.registry import BackendSelection

console = Console()
TOPICS = ["vn.shop.orders", "vn.payments.payments", "vn.finance.ledger_entries", "vn.finance.fx_rates"]
TABLES = [
    f"reconciliation.input.vn.{t}" for t in ("orders", "payments", "ledger_entries", "fx_rates", "duplicates")
]
COLUMNS = [ColumnEdge(t, f"c{i}", o, f"c{i}") for t, o in zip(TOPICS, TABLES, strict=False) for i in range(7)]


def _service(home: Path, transport: str) -> CatalogService:
    return CatalogService(
        open_catalog_store(BackendSelection(type="sqlite"), home),
        open_lineage_transport(BackendSelection(type=transport), home),
        Namespaces(events="kafka://broker:9092", lake="file:///wh", files=f"file://{home}"),
    )


def bench_record(runs: int, transport: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        catalog = _service(Path(tmp), transport)
        try:
            catalog.record_run("warmup", TOPICS, TABLES, column_lineage=COLUMNS)
            started = time.perf_counter()
            for _ in range(runs):
                catalog.record_run("reconciliation.export", TOPICS, TABLES, column_lineage=COLUMNS)
            return runs / (time.perf_counter() - started)
        finally:
            catalog.close()


def bench_store_only(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_catalog_store(BackendSelection(type="sqlite"), Path(tmp))
        try:
            payload = {"eventType": "START", "inputs": [{"namespace": "n", "name": t} for t in TOPICS]}
            edges = (*(Edge("job", t, "in") for t in TOPICS), *(Edge("job", t, "out") for t in TABLES))
            flows = tuple(Flow("job", t, o) for t, o in zip(TOPICS, TABLES, strict=False))
            started = time.perf_counter()
            for _ in range(runs):
                run_id = str(uuid.uuid4())
                for state in (RunState.START, RunState.COMPLETE):
                    run = Run(run_id, "job", state, 1, 2, tuple(TOPICS), tuple(TABLES))
                    record = RunEventRecord(
                        run, state, Job("job", "shopops"), edges, flows if state.terminal else (),
                        tuple(COLUMNS) if state.terminal else (), payload, 1,
                    )  # fmt: skip
                    store.record_event(record, 1)
            return runs / (time.perf_counter() - started)
        finally:
            store.close()


def bench_events_only(runs: int) -> float:
    """Building and serialising the two OpenLineage events of a run with the client, nothing else."""
    from datetime import UTC, datetime

    from shopops.catalog.lineage_events import run_event
    from shopops.catalog.model import new_dataset

    ins = [new_dataset(t, "kafka://broker:9092") for t in TOPICS]
    outs = [new_dataset(t, "file:///data") for t in TABLES]
    started = time.perf_counter()
    for _ in range(runs):
        run_id = str(uuid.uuid4())
        for state in (RunState.START, RunState.COMPLETE):
            run_event(
                state=state, event_time=datetime.now(UTC), run_id=run_id, job="job", job_namespace="shopops",
                inputs=ins, outputs=outs, column_lineage=COLUMNS if state.terminal else (),
            )  # fmt: skip
    return runs / (time.perf_counter() - started)


def bench_lineage(jobs: int, repeat: int = 5) -> tuple[float, float, int]:
    """(ms per lineage call, ms to load the graph alone, datasets in the tree)."""
    with tempfile.TemporaryDirectory() as tmp:
        catalog = _service(Path(tmp), "none")
        try:
            # A chain of jobs, each reading the previous job's outputs and one shared dimension.
            previous = ["src.a.events"]
            for j in range(jobs):
                outputs = [f"stage{j}.part{k}" for k in range(4)]
                catalog.record_run(f"job{j:04d}", [*previous, "dim.shared.calendar"], outputs)
                previous = outputs[:2]
            root = "src.a.events"
            calls, loads = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                view = catalog.lineage(root, "both", 10)
                calls.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                catalog.store.edges()
                catalog.store.flows()
                loads.append((time.perf_counter() - t0) * 1000)
            size = len(view.downstream.names("dataset")) if view.downstream else 0
            return statistics.median(calls), statistics.median(loads), size
        finally:
            catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configure_logging("WARNING")
    results: dict[str, Any] = {
        "record_run_file_per_s": bench_record(args.runs, "file"),
        "record_run_none_per_s": bench_record(args.runs, "none"),
        "baseline_store_only_per_s": bench_store_only(args.runs),
        "openlineage_events_only_per_s": bench_events_only(args.runs),
    }
    call_ms, load_ms, size = bench_lineage(args.jobs)
    results.update(
        {"lineage_ms": call_ms, "graph_load_ms": load_ms, "tree_datasets": size, "jobs": args.jobs}
    )
    table = Table(title=f"catalog: {args.runs} runs of 4 inputs -> 5 outputs, 28 column edges; SQLite store")
    for column in ("what", "figure", "vs baseline"):
        table.add_column(column)
    base = results["baseline_store_only_per_s"]
    table.add_row("record_run, file transport", f"{results['record_run_file_per_s']:,.0f} runs/s",
                  f"{results['record_run_file_per_s'] / base:.2f}x")  # fmt: skip
    table.add_row("record_run, no transport", f"{results['record_run_none_per_s']:,.0f} runs/s",
                  f"{results['record_run_none_per_s'] / base:.2f}x")  # fmt: skip
    table.add_row("baseline: store.record_event x2", f"{base:,.0f} runs/s", "1.00x")
    events = results["openlineage_events_only_per_s"]
    table.add_row(
        "build + serialise the 2 events alone (client)", f"{events:,.0f} runs/s", f"{events / base:.2f}x"
    )
    table.add_row(f"lineage both ways, depth 10 ({args.jobs} jobs, {size} datasets downstream)",
                  f"{call_ms:.1f} ms", f"{call_ms / load_ms:.2f}x")  # fmt: skip
    table.add_row("baseline: load edges and flows", f"{load_ms:.1f} ms", "1.00x")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
