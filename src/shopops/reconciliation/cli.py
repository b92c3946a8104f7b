"""`shopops reconcile …`: reconcile a window, read and export the results, score them.

``shopops reconcile --from 2026-01-01 --to 2026-01-07 --regions vn,sg,th`` runs the
reconciliation (building the input tables from the CDC topics first, unless ``--no-build``) and
prints a summary per region; the subcommands read what runs stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import pyarrow as pa
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, err_console, handle_errors
from shopops.cli.context import open_platform
from shopops.core.errors import InvalidInputError
from shopops.domain.regions import parse_regions
from shopops.reconciliation.model import CLASS_DESCRIPTIONS, ExceptionClass, RunReport, parse_day, severity
from shopops.reconciliation.rules import PACKAGED_RULES, load_region_rules

if TYPE_CHECKING:
    from shopops.reconciliation.service import ReconciliationService

app = typer.Typer(
    help="Reconcile orders, payment-provider records and the ledger across regions; every "
    "exception classified and explained.",
    invoke_without_command=True,
)

FromOpt = Annotated[str | None, typer.Option("--from", help="First business day (YYYY-MM-DD, local)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last business day (YYYY-MM-DD), included")]
RegionsOpt = Annotated[str, typer.Option("--regions", help="Comma-separated region codes")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@contextmanager
def _service() -> Iterator[ReconciliationService]:
    with open_platform() as platform:
        yield platform.reconciliation


def _day(text: str | None, what: str) -> date | None:
    return None if text is None else parse_day(text, what)


def _regions(text: str) -> list[str]:
    return [r.code for r in parse_regions(text)]


@app.callback()
@handle_errors
def reconcile(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    regions: RegionsOpt = "vn,sg,th",
    build: Annotated[
        bool, typer.Option("--build/--no-build", help="Rebuild the input tables from the CDC topics first")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Reconcile --regions over --from..--to and store the results (one partition per region-day)."""
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None:
        raise InvalidInputError(
            "give the window: --from YYYY-MM-DD --to YYYY-MM-DD",
            hint="or a subcommand: shopops reconcile --help",
        )
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    codes = _regions(regions)
    with _service() as service, _progress() as progress:
        if build and getattr(service.source, "root", None) is not None:
            task = progress.add_task("build input tables from CDC", total=len(codes))
            service.export_inputs(codes, lambda _r, _c: progress.advance(task))
        task = progress.add_task("reconcile", total=4)

        def step(stage: str, done: int, total: int) -> None:
            progress.update(task, description=f"reconcile: {stage}", completed=done, total=total)

        report = service.run(first, last, codes, step)
        summary = service.summary(regions=codes, start=first, end=last)
    if as_json:
        console.print_json(orjson.dumps(report.to_dict()).decode())
        return
    _print_report(report, summary)


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        yield progress


def _print_report(report: RunReport, summary: pa.Table) -> None:
    metrics = ["orders", "matched_orders", "breaks", *[c.value for c in ExceptionClass]]
    per_region: dict[str, dict[str, int]] = {}
    for row in summary.to_pylist():
        acc = per_region.setdefault(row["region"], dict.fromkeys(metrics, 0))
        for key in metrics:
            acc[key] += int(row[key])
    regions = sorted(per_region)
    table = Table(
        title=f"reconciliation {report.window.start} .. {report.window.end}: {report.seconds:.2f} s on "
        f"{report.engine}, rules {', '.join(report.rules.values())}"
    )
    table.add_column("")
    for region in regions:
        table.add_column(region, justify="right")
    table.add_column("total", justify="right")
    for metric in metrics:
        values = [per_region[r][metric] for r in regions]
        if metric not in ("orders", "matched_orders", "breaks") and not any(values):
            continue
        style = "bold" if metric in ("orders", "matched_orders") else "red" if metric == "breaks" else None
        label = metric.replace("_", " ")
        if metric in CLASS_DESCRIPTIONS:
            label = f"  {label}" + (" (info)" if severity(ExceptionClass(metric)) == "info" else "")
        table.add_row(label, *[f"{v:,}" for v in values], f"{sum(values):,}", style=style)
    console.print(table)
    console.print(
        f"run [bold]{report.run_id}[/]: {report.exceptions:,} exceptions in {report.partitions} "
        "region-day partitions; `shopops reconcile exceptions` lists them"
    )


@app.command("build-inputs")
@handle_errors
def build_inputs(regions: RegionsOpt = "vn,sg,th") -> None:
    """Build the input tables (orders, payments, ledger, FX rates) from the CDC topics."""
    codes = _regions(regions)
    with _service() as service, _progress() as progress:
        task = progress.add_task("build input tables from CDC", total=len(codes))
        counts = service.export_inputs(codes, lambda _r, _c: progress.advance(task))
    table = Table(title="input tables")
    names = ["orders", "payments", "ledger_entries", "fx_rates", "duplicates"]
    table.add_column("region")
    for name in names:
        table.add_column(name, justify="right")
    for region, c in counts.items():
        table.add_row(region, *[f"{c.get(n, 0):,}" for n in names])
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


@app.command()
@handle_errors
def exceptions(
    start: FromOpt = None,
    end: ToOpt = None,
    regions: Annotated[str | None, typer.Option("--regions", help="Comma-separated region codes")] = None,
    classes: Annotated[
        str | None, typer.Option("--class", help="Comma-separated exception classes (see `classes`)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List stored exceptions, each with its one-line explanation."""
    with _service() as service:
        table = service.exceptions(
            regions=_regions(regions) if regions else None,
            start=_day(start, "--from"),
            end=_day(end, "--to"),
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
            limit=limit,
            offset=offset,
        )
    rows = table.to_pylist()
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    out = Table(title=f"{len(rows)} exception(s)", show_lines=False)
    out.add_column("day", no_wrap=True)
    out.add_column("class", no_wrap=True)
    out.add_column("explanation", overflow="fold")
    for r in rows:
        style = "yellow" if r["severity"] == "info" else "red"
        out.add_row(f"{r['region']} {r['business_date']}", f"[{style}]{r['class']}[/]", r["explanation"])
    console.print(out)


@app.command()
@handle_errors
def summary(
    start: FromOpt = None, end: ToOpt = None, regions: RegionsOpt = "vn,sg,th", as_json: JsonOpt = False
) -> None:
    """Per region and business day: orders, matched orders, exceptions by class."""
    with _service() as service:
        table = service.summary(regions=_regions(regions), start=_day(start, "--from"), end=_day(end, "--to"))
    rows = table.to_pylist()
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    classes = [c.value for c in ExceptionClass if any(r.get(c.value) for r in rows)]
    out = Table(title=f"{len(rows)} region-day(s)")
    for column in ("region", "day", "orders", "matched", "breaks", *classes):
        out.add_column(column.replace("_", " "), justify="left" if column in ("region", "day") else "right")
    for r in rows:
        out.add_row(
            r["region"],
            str(r["business_date"]),
            f"{r['orders']:,}",
            f"{r['matched_orders']:,}",
            f"{r['breaks']:,}",
            *[f"{r[c]:,}" for c in classes],
        )
    console.print(out)


@app.command()
@handle_errors
def ageing(as_json: JsonOpt = False) -> None:
    """Open exceptions by region, class and age (since a run first saw them)."""
    with _service() as service:
        rows = service.ageing()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    out = Table(title="open exceptions by age")
    for column in ("region", "class", "age", "open"):
        out.add_column(column, justify="right" if column == "open" else "left")
    for r in rows:
        out.add_row(r["region"], r["class"], r["age"], f"{r['open']:,}")
    console.print(out)


@app.command()
@handle_errors
def runs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20, as_json: JsonOpt = False) -> None:
    """The latest runs: window, engine, rules versions, duration, exceptions."""
    with _service() as service:
        rows = service.store.runs(limit)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    out = Table(title="reconciliation runs")
    for column in ("run", "status", "window", "regions", "engine", "seconds", "exceptions"):
        out.add_column(column, justify="right" if column in ("seconds", "exceptions") else "left")
    for r in rows:
        style = {"succeeded": "green", "failed": "red"}.get(r["status"], "yellow")
        out.add_row(
            r["run_id"],
            f"[{style}]{r['status']}[/]",
            f"{r['from']} .. {r['to']}",
            ",".join(r["regions"]),
            r["engine"],
            f"{r['seconds']:.2f}",
            f"{r['exceptions']:,}",
        )
    console.print(out)


@app.command("export")
@handle_errors
def export_results(
    out: Annotated[Path, typer.Option("--out", help="File to write")],
    what: Annotated[str, typer.Option("--what", help="exceptions or summary")] = "exceptions",
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    start: FromOpt = None,
    end: ToOpt = None,
    regions: Annotated[str | None, typer.Option("--regions", help="Comma-separated region codes")] = None,
) -> None:
    """Write stored exceptions or summaries to a CSV or Parquet file."""
    if what not in ("exceptions", "summary"):
        raise InvalidInputError(f"--what {what!r}: choose exceptions or summary")
    if fmt not in ("csv", "parquet"):
        raise InvalidInputError(f"--format {fmt!r}: choose csv or parquet")
    kind: Literal["exceptions", "summary"] = "exceptions" if what == "exceptions" else "summary"
    file_format: Literal["csv", "parquet"] = "csv" if fmt == "csv" else "parquet"
    with _service() as service:
        count = service.export(
            kind,
            file_format,
            out,
            regions=_regions(regions) if regions else None,
            start=_day(start, "--from"),
            end=_day(end, "--to"),
        )
    console.print(f"wrote {count:,} {what} rows to {out}")


@app.command()
@handle_errors
def score(
    start: FromOpt = None,
    end: ToOpt = None,
    regions: RegionsOpt = "vn,sg,th",
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth directory (default: $SHOPOPS_HOME/truth)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score stored exceptions against the simulator's ground truth: recall and precision per class."""
    first, last = _day(start, "--from"), _day(end, "--to")
    if first is None or last is None:
        raise InvalidInputError("give the scored window: --from YYYY-MM-DD --to YYYY-MM-DD")
    with open_platform() as platform:
        result = platform.reconciliation.score(truth or platform.truth_dir, first, last, _regions(regions))
    rows = result.per_class()
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "recall": result.recall,
                    "precision": result.precision,
                    "classes": rows,
                    "missed": result.missed_examples,
                    "false": result.false_examples,
                }
            )
        )
        return
    out = Table(title=f"recall {result.recall:.4f} · precision {result.precision:.4f}")
    for column in ("class", "expected", "found", "missed", "false", "recall", "precision"):
        out.add_column(column, justify="left" if column == "class" else "right")
    for r in rows:
        style = "green" if r["missed"] == 0 and r["false"] == 0 else "red"
        out.add_row(
            f"[{style}]{r['class']}[/]",
            str(r["expected"]),
            str(r["found"]),
            str(r["missed"]),
            str(r["false"]),
            f"{r['recall']:.4f}",
            f"{r['precision']:.4f}",
        )
    console.print(out)
    for cls, record in result.missed_examples[:10]:
        console.print(f"[red]missed[/] {cls} {record}")
    for cls, record, why in result.false_examples[:10]:
        console.print(f"[red]false[/] {cls} {record}: {why}")


@app.command()
@handle_errors
def rules(
    path: Annotated[
        Path | None, typer.Argument(help="A rules file or directory (default: the shipped rules)")
    ] = None,
) -> None:
    """Validate rules files and show what they say (exit code 2 on the first malformed file)."""
    target = path or PACKAGED_RULES
    files = sorted(target.glob("*.yaml")) if target.is_dir() else [target]
    if not files:
        raise InvalidInputError(f"{target}: no *.yaml rules files")
    out = Table(title=f"rules in {target}")
    for column in (
        "region",
        "version",
        "currency",
        "amount tol",
        "rounding tol",
        "fx tol %",
        "record h",
        "settle h",
    ):
        out.add_column(column)
    for file in files:
        r = load_region_rules(file)
        out.add_row(
            r.region,
            str(r.version),
            r.currency,
            str(r.tolerance.amount),
            str(r.tolerance.rounding),
            str(r.tolerance.fx_rate_pct),
            str(r.windows.record_within_hours),
            str(r.windows.settle_within_hours),
        )
    console.print(out)


@app.command()
def classes() -> None:
    """The exception classes and what each means."""
    out = Table(title="exception classes")
    out.add_column("class")
    out.add_column("severity")
    out.add_column("meaning")
    for cls in ExceptionClass:
        out.add_row(cls.value, severity(cls), CLASS_DESCRIPTIONS[cls])
    console.print(out)
