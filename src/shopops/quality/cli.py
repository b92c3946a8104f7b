"""`shopops contracts …`: lint data contracts, check datasets against them, read the results."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import cli_settings, open_platform
from shopops.core.errors import InvalidInputError

app = typer.Typer(
    help="Data contracts (Open Data Contract Standard): lint them, check datasets, read the results.",
    no_args_is_help=True,
)


def _outcome(value: str) -> str:
    colour = {"passed": "green", "failed": "red", "skipped": "dim"}.get(value, "yellow")
    return f"[{colour}]{value}[/]"


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("lint")
@handle_errors
def lint(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Contract files or folders (default: the contracts folder)")
    ] = None,
    registry: Annotated[
        bool,
        typer.Option(
            "--registry",
            help="Also check compatibility with the schemas registered for each dataset's topics",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the issues as JSON")] = False,
) -> None:
    """Validate contracts against the ODCS standard and what shopops runs; exit 1 on any error."""
    from shopops.bootstrap import build_quality

    settings = cli_settings()
    with open_platform(settings) as platform:
        service = build_quality(settings, registry=lambda: platform.schema_client)
        try:
            files, issues = service.lint(paths, registry=registry)
        finally:
            service.close()
    errors = [i for i in issues if i.severity == "error"]
    if as_json:
        console.print_json(
            json.dumps({"files": files, "errors": len(errors), "issues": [i.to_dict() for i in issues]})
        )
    else:
        for issue in issues:
            colour = "red" if issue.severity == "error" else "yellow"
            err_console.print(f"[{colour}]{issue}[/]", highlight=False, soft_wrap=True)
        verdict = "[green]ok[/]" if not errors else f"[red]{len(errors)} error(s)[/]"
        warnings = len(issues) - len(errors)
        console.print(
            f"{len(files)} contract file(s): {verdict}" + (f", {warnings} warning(s)" if warnings else "")
        )
    if errors:
        raise typer.Exit(1)


@app.command("list")
@handle_errors
def list_contracts(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The contracts in force: dataset, owner, version, key, PII columns, freshness SLA."""
    from shopops.bootstrap import build_quality

    service = build_quality(cli_settings())
    try:
        rows = [c.summary() for c in service.contracts()]
    finally:
        service.close()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} data contracts")
    for col in ("dataset", "version", "owner", "primary key", "columns", "PII", "freshness"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["dataset"], r["version"], r["owner"] or "-", ", ".join(r["primary_key"]), str(r["columns"]),
            ", ".join(r["pii_columns"]) or "-", r["freshness"] or "-",
        )  # fmt: skip
    console.print(table)


def _parse_now(now: str | None) -> int | None:
    if now is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(now)
    except ValueError:
        raise InvalidInputError(
            f"--now must be an ISO timestamp like 2026-01-08T00:00:00+00:00 (got {now!r})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@app.command("check")
@handle_errors
def check(
    dataset: Annotated[str | None, typer.Argument(help="Dataset to check (<database>.<table>)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every dataset with a contract")] = False,
    source: Annotated[
        str | None,
        typer.Option(
            help="silver (the lake), parquet (--path) or events (the CDC topics); default quality.source"
        ),
    ] = None,
    path: Annotated[
        Path | None, typer.Option(help="Folder of <dataset>.parquet files for --source parquet")
    ] = None,
    regions: Annotated[str | None, typer.Option(help="Comma-separated regions (default: all)")] = None,
    now: Annotated[
        str | None, typer.Option(help="Reference time of freshness SLAs (ISO; default: now)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON")] = False,
) -> None:
    """Check whole datasets against their contracts; the runs are stored. Exit 1 if a check failed."""
    from shopops.bootstrap import build_quality
    from shopops.quality.sources import open_source, regions_of

    if (dataset is None) == (not all_):
        raise InvalidInputError("name one DATASET or give --all")
    now_ms = _parse_now(now)
    wanted = regions_of(regions.split(",")) if regions else None
    settings = cli_settings()
    kind = source or settings.quality.source
    with open_platform(settings) as platform:
        catalog: Any = None
        if kind == "silver":
            from shopops.lake.catalog import open_catalog

            catalog = open_catalog(settings.lake.catalog_uri, settings.lake.warehouse, settings.home)
        table_source = open_source(
            kind, event_log=platform.event_log, catalog=catalog, path=path or settings.quality.parquet_dir
        )
        service = build_quality(settings)
        try:
            names = [dataset] if dataset else None
            total = len(names) if names else len(service.contracts())
            skipped: list[str] = []
            with Progress(
                TextColumn("[bold]checking[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(), console=err_console, transient=True,
            ) as progress:  # fmt: skip
                task = progress.add_task("", total=total)

                def step(name: str, run: Any, error: Exception | None) -> None:
                    if error is not None:
                        skipped.append(f"{name}: {error}")
                    progress.update(task, advance=1, description=name)

                runs = service.check(table_source, names, regions=wanted, now_ms=now_ms, progress=step)
        finally:
            service.close()
    if as_json:
        console.print_json(
            json.dumps(
                [{**r.to_dict(), "checks": [c.to_dict() for c in r.checks]} for r in runs], default=str
            )
        )
    else:
        for r in runs:
            _print_run(r.to_dict(), [c.to_dict() for c in r.checks], {c.check: c.samples for c in r.checks})
        for line in skipped:
            err_console.print(f"[yellow]not checked:[/] {line}", highlight=False)
    if any(r.outcome == "failed" for r in runs):
        raise typer.Exit(1)


def _print_run(
    run: dict[str, Any], checks: list[dict[str, Any]], samples: dict[str, Any] | None = None
) -> None:
    title = (
        f"{run['dataset']}: {_outcome(run['outcome'])} — {run['rows_checked']:,} rows, "
        f"{run['rows_failed']:,} failing, run {run['run_id']} "
        f"({run['mode']}, {run['source']}, {_when(run['finished_at_ms'])})"
    )
    table = Table(title=title, title_justify="left")
    for col in ("check", "kind", "outcome", "failing rows", "observed", "expected", "why"):
        table.add_column(col, justify="right" if col in ("failing rows", "observed") else "left")
    for c in checks:
        if c["outcome"] == "passed" and c["kind"] == "type":
            continue
        observed = "" if c["observed"] is None else f"{c['observed']:,.6g}"
        table.add_row(
            c["check"], c["kind"], _outcome(c["outcome"]), f"{c['rows_failed']:,}", observed, c["expected"],
            c["message"] if c["outcome"] != "passed" else "",
        )  # fmt: skip
    console.print(table)
    if samples:
        for name, rows in samples.items():
            for row in rows[:3]:
                console.print(f"  [red]{name}[/] {json.dumps(row.key)}: {row.reason}", highlight=False)


@app.command("results")
@handle_errors
def results(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only runs with a failed check")] = False,
    mode: Annotated[str | None, typer.Option(help="batch (micro-batches) or table (whole tables)")] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Show one run: every check and its failing rows")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Runs to list")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Stored check runs (newest first), or one run in detail with its failing rows."""
    from shopops.bootstrap import build_quality

    service = build_quality(cli_settings())
    try:
        if run is not None:
            detail = service.run(run)
            failures = service.failures(run, limit=1000)
            if as_json:
                console.print_json(json.dumps({**detail, "failures": failures}, default=str))
                return
            _print_run(detail, detail["checks"])
            if failures:
                table = Table(title=f"failing rows ({len(failures)} sampled)", title_justify="left")
                for col in ("check", "key", "reason"):
                    table.add_column(col)
                for f in failures:
                    table.add_row(f["check"], json.dumps(f["key"]), f["reason"])
                console.print(table)
            return
        rows = service.runs(dataset, mode=mode, failed_only=failed, limit=limit)
    finally:
        service.close()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} quality runs")
    for col in (
        "run",
        "dataset",
        "mode",
        "source",
        "finished (UTC)",
        "rows",
        "failing rows",
        "failed checks",
        "outcome",
    ):
        table.add_column(col, justify="right" if col in ("rows", "failing rows", "failed checks") else "left")
    for r in rows:
        table.add_row(
            r["run_id"], r["dataset"], r["mode"], r["source"], _when(r["finished_at_ms"]),
            f"{r['rows_checked']:,}",
            f"{r['rows_failed']:,}", f"{r['checks_failed']}/{r['checks_total']}", _outcome(r["outcome"]),
        )  # fmt: skip
    console.print(table)
