"""`shopops features …`: apply the Feast repository, materialize, read online features, list, push."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopops.cli.common import console, handle_errors
from shopops.core.errors import InvalidInputError
from shopops.ml.features.model import USE_CASES, parse_timestamp_ms

app = typer.Typer(
    help="The feature store (Feast): offline data from the lake, online features for fraud and ETA.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _service() -> Any:
    from shopops.bootstrap import build_features
    from shopops.cli.context import cli_settings

    return build_features(cli_settings())


@app.command()
@handle_errors
def apply(as_json: JsonOpt = False) -> None:
    """Register the entities, feature views, push sources and feature services in the registry."""
    report = _service().apply()
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    out = Table(title=f"Feast project {report.project} applied in {report.seconds:.1f} s", show_header=False)
    out.add_column("what", style="bold")
    out.add_column("names")
    out.add_row("entities", ", ".join(report.entities))
    out.add_row("feature views", ", ".join(report.feature_views))
    out.add_row("push sources", ", ".join(report.push_sources))
    out.add_row("feature services", ", ".join(report.feature_services))
    out.add_row("online store", report.online_store)
    out.add_row("registry", report.registry)
    console.print(out)


@app.command()
@handle_errors
def materialize(
    end: Annotated[
        str | None,
        typer.Option(
            help="Load online values as of this time (ISO-8601; default: the newest event in the lake)"
        ),
    ] = None,
    regions: Annotated[
        str | None, typer.Option(help="Comma-separated regions (default: all in the lake)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Derive the offline store from the lake's change history and load the online store."""
    until = datetime.fromtimestamp(parse_timestamp_ms(end, "--end") / 1000, UTC) if end else None
    codes = [c.strip() for c in regions.split(",") if c.strip()] if regions else None
    service = _service()
    # Bound to the real stderr now: Feast's own output is silenced while it runs.
    bar_console = Console(file=sys.stderr)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=bar_console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("materialize", total=None)

        def step(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        report = service.materialize(until, progress=step, regions=codes)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    out = Table(
        title=f"materialized {', '.join(report.regions)} up to {report.end.isoformat()} "
        f"(derive {report.derive_seconds:.1f} s, load {report.load_seconds:.1f} s)"
    )
    out.add_column("feature view")
    out.add_column("rows", justify="right")
    for name, rows in report.rows.items():
        out.add_row(name, f"{rows:,}")
    for name, rows in report.entities.items():
        out.add_row(f"[dim]{name} training entities[/]", f"{rows:,}")
    console.print(out)
    console.print(f"lake snapshots read: {len(report.data_versions)} tables")


def _entity(pairs: list[str]) -> dict[str, str]:
    entity: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--entity {pair!r} is not key=value", hint="e.g. --entity customer_id=vn-c-0000001"
            )
        entity[key.strip()] = value.strip()
    return entity


@app.command()
@handle_errors
def get(
    use_case: Annotated[str, typer.Argument(help=f"One of: {', '.join(USE_CASES)}")],
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", "-e", help="key=value, repeated (e.g. -e customer_id=vn-c-0000001)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Online features of one entity (``shopops features list`` shows each use case's keys)."""
    result = _service().online_features(use_case, _entity(entity or []))
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    out = Table(title=f"{use_case} online features ({len(result.missing)} missing)")
    out.add_column("feature")
    out.add_column("value", justify="right")
    for name, value in result.values.items():
        out.add_row(name, "[yellow]missing[/]" if value is None else f"{value:,.4g}")
    console.print(out)


@app.command("list")
@handle_errors
def list_(as_json: JsonOpt = False) -> None:
    """Feature views (keys, features, push or batch, rows at the last materialization) and use cases."""
    info = _service().describe()
    if as_json:
        console.print_json(json.dumps(info))
        return
    out = Table(
        title=f"Feast project {info['project']} — online store {info['online_store']}, "
        f"materialized up to {info['materialized'] or 'never'}"
    )
    for column in ("view", "keys", "features", "push", "rows", "source"):
        out.add_column(column, justify="right" if column == "rows" else "left")
    for view in info["views"]:
        rows = view["rows"]
        out.add_row(
            view["name"],
            ", ".join(view["keys"]),
            ", ".join(view["features"]),
            "yes" if view["push"] else "",
            "" if rows is None else f"{rows:,}",
            view["source"],
        )
    console.print(out)
    cases = Table(title="use cases")
    for column in ("use case", "keys", "optional keys", "label", "truth", "features"):
        cases.add_column(column)
    for name, case in info["use_cases"].items():
        cases.add_row(
            name,
            ", ".join(case["keys"]),
            ", ".join(case["optional_keys"]),
            case["label"],
            case["truth"],
            str(len(case["features"])),
        )
    console.print(cases)


@app.command()
@handle_errors
def push(as_json: JsonOpt = False) -> None:
    """Fold the event log once and push the real-time features (what ``shopops up`` does continuously)."""
    from shopops.bootstrap import build_feature_pusher, build_features
    from shopops.cli.context import open_platform

    with open_platform() as platform:
        pusher = build_feature_pusher(
            platform.settings, platform.event_log, build_features(platform.settings)
        )
        total: dict[str, int] = {}
        records = 0
        while True:
            result = pusher.run_once()
            records += result.records
            for view, rows in result.pushed.items():
                total[view] = total.get(view, 0) + rows
            if result.records == 0:
                break
    if as_json:
        console.print_json(json.dumps({"records": records, "pushed": total}))
        return
    out = Table(title=f"pushed real-time features from {records:,} events")
    out.add_column("feature view")
    out.add_column("rows", justify="right")
    for view, rows in total.items():
        out.add_row(view, f"{rows:,}")
    console.print(out)
