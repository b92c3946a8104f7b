"""`shopops lake …`: ingest the CDC topics into bronze and silver Iceberg tables, list and show them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import open_platform

app = typer.Typer(
    help="The lakehouse: CDC change events in Apache Iceberg tables (bronze: as received; silver: "
    "current state per key), exactly once.",
    no_args_is_help=True,
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
    silver: Annotated[
        bool | None, typer.Option("--silver/--no-silver", help="Build silver too (default: lake.silver)")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep ingesting every lake.interval_s until interrupted")
    ] = False,
    checks: Annotated[
        bool,
        typer.Option(
            "--checks/--no-checks",
            help="Check silver batches against the data contracts; quarantine the rows that fail",
        ),
    ] = False,
) -> None:
    """Catch every topic's bronze and silver tables up with the event log (one Iceberg commit per
    table and batch); with --follow, keep doing so as new change events arrive."""
    from shopops.bootstrap import build_lake_ingestor
    from shopops.lake.ingest import BatchResult

    with open_platform() as platform:
        cfg = platform.settings.lake
        overrides = {"topics": topics, "batch_records": batch, "silver": silver}
        ingestor = build_lake_ingestor(
            platform.settings,
            platform.event_log,
            checks=checks,
            registry=platform.schema_client,
            **{k: v for k, v in overrides.items() if v is not None},
        )
        names = ingestor.topics()
        written = {"bronze": 0, "silver": 0}

        def advance(result: BatchResult) -> None:
            progress.advance(task, result.records)
            for table, rows in result.written.items():
                stage = table.split(".")[0]
                written[stage] = written.get(stage, 0) + rows

        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(), console=err_console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task(f"ingest {len(names)} topics", total=None)
            total = ingestor.run_once(advance)
            while follow:
                try:
                    time.sleep(cfg.interval_s)
                    total += ingestor.run_once(advance)
                    ingestor.clean_if_due()  # every lake.clean_interval_s, as the worker of `shopops up`
                except KeyboardInterrupt:
                    break
    console.print(
        f"read {total:,} change events of {len(names)} topics: {written['bronze']:,} appended to bronze, "
        f"{written['silver']:,} rows written to silver"
    )


@app.command("replay-quarantine")
@handle_errors
def replay_quarantine(
    topic: Annotated[
        str, typer.Argument(help="The CDC topic <region>.<database>.<table>, e.g. vn.shop.orders")
    ],
    check: Annotated[
        str | None,
        typer.Option(
            help="Only rows quarantined by this check, e.g. schema or quantity.range (default: all)"
        ),
    ] = None,
) -> None:
    """Apply to silver the quarantined events of a topic that now pass: their schema accepted by
    the registry, the data contracts' checks passed. Silver's position does not move, a newer
    state of a key is never overwritten, and a second run applies nothing twice."""
    from shopops.bootstrap import build_quality, build_schema_decisions
    from shopops.lake.catalog import open_lake_catalog
    from shopops.lake.replay import replay_quarantine as replay

    with open_platform() as platform:
        settings = platform.settings
        quality = build_quality(settings)
        try:
            report = replay(
                open_lake_catalog(settings),
                topic,
                schemas=build_schema_decisions(settings, platform.schema_client),
                checker=quality.checker(),
                check=check,
            )
        finally:
            quality.close()
    missing = f" ({report.missing:,} not found in bronze)" if report.missing else ""
    console.print(
        f"{topic}: {report.considered:,} quarantined events considered{missing}; "
        f"{report.written:,} rows written to silver"
    )


@app.command()
@handle_errors
def clean(
    keep: Annotated[int, typer.Option(min=1, help="Snapshots kept per table (the newest)")] = 10,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than", min=0, help="Only delete files older than this many seconds (a commit in flight)"
        ),
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Change nothing; list what would go")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Expire each lake table's old snapshots and delete the files no kept snapshot references
    (data files replaced by merges and compactions, their manifests, old metadata)."""
    from shopops.lake.catalog import open_lake_catalog
    from shopops.lake.maintenance import clean_lake

    with open_platform() as platform:
        catalog = open_lake_catalog(platform.settings)
        reports = clean_lake(catalog, keep_snapshots=keep, older_than_s=older_than, dry_run=dry_run)
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(r) for r in reports]))
        return
    deleted = sum(len(r.deleted) for r in reports)
    size = sum(r.deleted_bytes for r in reports)
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{len(reports)} tables: {sum(r.expired for r in reports):,} snapshots expired; {verb} "
        f"{deleted:,} unreferenced files ({size / 1e6:,.1f} MB); kept {sum(r.referenced for r in reports):,} "
        f"referenced files and {sum(r.young for r in reports):,} younger than {older_than:g} s"
    )


def _table_row(catalog: Any, name: str) -> dict[str, Any]:
    from shopops.lake.silver import TRUNCATED_PROPERTY
    from shopops.lake.tables import offsets_of

    table = catalog.load_table(name)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot else None
    props = summary.additional_properties if summary else {}
    return {
        "table": name,
        "stage": name.split(".")[0],
        "topic": name.split(".", 1)[1].replace("__", "."),
        "records": int(props.get("total-records", 0)),
        "files": int(props.get("total-data-files", 0)),
        "snapshots": len(table.snapshots()),
        "offsets": offsets_of(table),
        # The last truncate event a silver table applied (its position), if any.
        "truncated": json.loads(props[TRUNCATED_PROPERTY]) if TRUNCATED_PROPERTY in props else None,
    }


@app.command()
@handle_errors
def tables(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Bronze, silver and quarantine tables: rows, files, snapshots, the committed position and,
    for a silver table a truncate emptied, where that truncate was."""
    from shopops.lake.catalog import open_lake_catalog

    with open_platform() as platform:
        catalog = open_lake_catalog(platform.settings)
        namespaces = {n[0] for n in catalog.list_namespaces()}
        rows: list[dict[str, Any]] = []
        for namespace in ("bronze", "silver", "quarantine"):
            if namespace in namespaces:
                for identifier in sorted(catalog.list_tables(namespace)):
                    rows.append(_table_row(catalog, ".".join(identifier)))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    out = Table(title=f"{len(rows)} lake tables (silver and quarantine records include delete markers)")
    truncated = any(r["truncated"] for r in rows)
    columns = ["table", "records", "files", "snapshots", "next offsets"] + (
        ["truncated at"] if truncated else []
    )
    for column in columns:
        out.add_column(column, justify="right" if column in ("records", "files", "snapshots") else "left")
    for r in rows:
        cells = [
            r["table"],
            f"{r['records']:,}",
            str(r["files"]),
            str(r["snapshots"]),
            json.dumps(r["offsets"]),
        ]
        if truncated:
            cells.append(_truncated_at(r["truncated"]))
        out.add_row(*cells)
    console.print(out)


def _truncated_at(truncate: dict[str, Any] | None) -> str:
    if truncate is None:
        return "-"
    where = f"LSN {truncate['lsn']}" if truncate["lsn"] is not None else f"ts {truncate['ts_ms']}"
    return f"{where} ({truncate['partition']}@{truncate['offset']})"


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds")
    return str(value)


@app.command()
@handle_errors
def show(
    dataset: Annotated[str, typer.Argument(help="<database>.<table>, e.g. shop.orders")],
    region: Annotated[
        list[str] | None,
        typer.Option("--region", "-r", help="Region(s) (default: all; repeat or comma-separate)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to print (0: only count them)")] = 20,
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="Show the rows the contract checks rejected instead")
    ] = False,
    metadata: Annotated[bool, typer.Option("--metadata/--no-metadata", help="Show the _ columns")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows")] = False,
) -> None:
    """Print the current rows of a silver dataset (delete markers left out), or its quarantine."""
    from shopops.lake.catalog import open_lake_catalog
    from shopops.lake.quarantine import read_quarantine
    from shopops.lake.silver import read_silver

    regions = [r.strip() for item in region or [] for r in item.split(",") if r.strip()] or None
    with open_platform() as platform:
        catalog = open_lake_catalog(platform.settings)
        rows = (
            read_quarantine(catalog, dataset, regions)
            if quarantine
            else read_silver(catalog, dataset, regions)
        )
    shown = rows.slice(0, limit)
    if not metadata and not quarantine:
        shown = shown.select([c for c in shown.column_names if not c.startswith("_") or c == "_region"])
    if as_json:
        console.print_json(json.dumps(shown.to_pylist(), default=str))
        return
    what = "quarantined rows" if quarantine else "rows"
    out = Table(title=f"{dataset}: {rows.num_rows:,} {what}" + (f", first {shown.num_rows}" if limit else ""))
    for column in shown.column_names:
        out.add_column(column, overflow="fold")
    for row in shown.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    console.print(out)
