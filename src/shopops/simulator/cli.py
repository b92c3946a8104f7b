"""`shopops simulate`: play the company's CDC streams into the event log, with ground truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, fmt_count, handle_errors
from shopops.cli.context import cli_settings, open_platform
from shopops.core.errors import InvalidInputError
from shopops.events.port import EventLog
from shopops.simulator.service import (
    BadRowRates,
    SimulationConfig,
    SimulationConfigError,
    SimulationReport,
    run_simulation,
)


def simulate_with_progress(
    config: SimulationConfig, log: EventLog, truth_dir: Path, realtime_rate: float | None = None
) -> SimulationReport:
    """Run the simulator with a rich progress bar over region-days."""
    with Progress(
        TextColumn("[bold]simulating[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("region-days"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("simulate", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return run_simulation(config, log, truth_dir, progress=on_progress, realtime_rate=realtime_rate)


def print_report(report: SimulationReport) -> None:
    table = Table(title=f"{report.events:,} change events in {report.seconds:.1f} s")
    table.add_column("topic", style="cyan")
    table.add_column("events", justify="right")
    for topic, count in sorted(report.per_topic.items()):
        table.add_row(topic, fmt_count(count))
    console.print(table)
    if report.pains:
        pains = Table(title="injected pains (ground truth)")
        pains.add_column("kind", style="magenta")
        pains.add_column("count", justify="right")
        for kind, count in sorted(report.pains.items()):
            pains.add_row(kind, fmt_count(count))
        console.print(pains)
    for name, path in sorted(report.truth_files.items()):
        console.print(f"[dim]ground truth[/] {name}: {path}", highlight=False)


@handle_errors
def simulate(
    regions: Annotated[str, typer.Option(help="Comma-separated regions, e.g. vn,sg,th")] = "vn,sg,th",
    days: Annotated[int, typer.Option(help="Simulated days")] = 30,
    orders_per_day: Annotated[int, typer.Option(help="Orders per day per region")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events")] = 42,
    start: Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD)")] = "2026-01-01",
    partitions: Annotated[int, typer.Option(help="Partitions per topic")] = 3,
    envelope: Annotated[
        str, typer.Option(help="schema (JSON with schema), plain (JSON), or mixed per topic")
    ] = "schema",
    rate_multiplier: Annotated[float, typer.Option(help="Multiply every injected pain's rate")] = 1.0,
    rate: Annotated[
        float | None, typer.Option(help="Stream in real time at this many events/s instead of at full speed")
    ] = None,
    bad_rows: Annotated[
        float,
        typer.Option(
            help="Probability that a new row gets a data-quality defect, per kind of bad row (0 = none)"
        ),
    ] = 0.0,
    truth_dir: Annotated[
        Path | None, typer.Option(help="Where to write ground truth Parquet (default $SHOPOPS_HOME/truth)")
    ] = None,
) -> None:
    """Simulate the company's regional databases and stream their Debezium change events."""
    if rate is not None and rate <= 0:
        raise InvalidInputError(f"--rate must be positive (got {rate})")
    if envelope not in ("schema", "plain", "mixed"):
        raise InvalidInputError(f"--envelope must be schema, plain or mixed (got {envelope!r})")
    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise InvalidInputError(f"--start must be a date like 2026-01-01 (got {start!r})") from None
    kind: Literal["schema", "plain", "mixed"] = envelope  # type: ignore[assignment]
    try:
        config = SimulationConfig(
            regions=[r for r in regions.split(",") if r],
            days=days,
            orders_per_day=orders_per_day,
            seed=seed,
            start=first_day,
            partitions=partitions,
            envelope=kind,
            rate_multiplier=rate_multiplier,
            bad_rows=BadRowRates.every(bad_rows),
        )
    except SimulationConfigError as exc:
        raise InvalidInputError(
            "; ".join(f"{_flag(name)}: {message}" for name, message in exc.problems), hint=exc.hint
        ) from None
    settings = cli_settings()
    with open_platform(settings) as platform:
        report = simulate_with_progress(config, platform.event_log, truth_dir or platform.truth_dir, rate)
    print_report(report)


def _flag(field: str) -> str:
    """The command-line option of a config field (``orders_per_day`` -> ``--orders-per-day``)."""
    if field.startswith("bad_rows"):
        return "--bad-rows"
    if field in SimulationConfig.model_fields and field != "rates":
        return "--" + field.replace("_", "-")
    return field
