"""`shopops lake …`: ingest the CDC topics into the bronze Iceberg tables, list the tables."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import open_platform

app = typer.Typer(
    help="The lakehouse: CDC change events in Apache Iceberg tables, exactly once.", no_args_is_help=True
)


@app.command()
@handle_errors
def ingest(
    topics: Annotated[
        str | None, typer.Option(help="Regular expression of topics (default: lake.topics)")
    ] = None,
    batch: Annotated[
        int | None, typer.Option(min=1, help="Records per commit (default: lake.batch_records)")
    ] = None,
) -> None:
    """Catch every topic's bronze table up with the event log (one Iceberg commit per batch)."""
    from shopops.lake.catalog import open_catalog
    from shopops.lake.ingest import LakeIngestor

    with open_platform() as platform:
        cfg = platform.settings.lake
        catalog = open_catalog(cfg.catalog_uri, cfg.warehouse, platform.settings.home)
        ingestor = LakeIngestor(
            platform.event_log,
            catalog,
            topics=topics or cfg.topics,
            batch_records=batch or cfg.batch_records,
        )
        names = ingestor.topics()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(), console=err_console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task(f"ingest {len(names)} topics", total=None)
            total = ingestor.run_once(lambda r: progress.advance(task, r.records))
    console.print(f"appended {total:,} change events to {len(names)} bronze tables")


@app.command()
@handle_errors
def tables(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Bronze tables: rows, snapshots and the committed position per partition."""
    from shopops.lake.bronze import NAMESPACE, BronzeTable
    from shopops.lake.catalog import open_catalog

    with open_platform() as platform:
        cfg = platform.settings.lake
        catalog = open_catalog(cfg.catalog_uri, cfg.warehouse, platform.settings.home)
        rows: list[dict[str, Any]] = []
        if NAMESPACE in {n[0] for n in catalog.list_namespaces()}:
            for identifier in sorted(catalog.list_tables(NAMESPACE)):
                topic = identifier[-1].replace("__", ".")
                table = BronzeTable(catalog, topic)
                snapshot = table.table.current_snapshot()
                summary = snapshot.summary if snapshot else None
                total = int(summary.additional_properties.get("total-records", 0)) if summary else 0
                rows.append(
                    {
                        "table": table.name,
                        "topic": topic,
                        "records": total,
                        "snapshots": len(table.table.snapshots()),
                        "offsets": table.committed_offsets(),
                    }
                )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    out = Table(title=f"{len(rows)} bronze tables")
    for column in ("table", "records", "snapshots", "next offsets"):
        out.add_column(column, justify="right" if column in ("records", "snapshots") else "left")
    for r in rows:
        out.add_row(r["table"], f"{r['records']:,}", str(r["snapshots"]), json.dumps(r["offsets"]))
    console.print(out)
