"""`shopops events …`: look at topics, records and consumer-group lag."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
import typer
from rich.table import Table

from shopops.cli.common import console, fmt_count, handle_errors
from shopops.cli.context import open_platform
from shopops.events.service import RecordView

app = typer.Typer(
    help="Inspect the event log: topics, records, consumer groups and their lag.", no_args_is_help=True
)


@app.command("topics")
@handle_errors
def topics(
    prefix: Annotated[str, typer.Option(help="Only topics whose name starts with this, e.g. 'vn.'")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List topics with their partition and record counts."""
    with open_platform() as platform:
        infos = platform.events.topics(prefix)
    if as_json:
        console.print_json(
            orjson.dumps(
                [{"name": t.name, "partitions": t.partitions, "messages": t.messages} for t in infos]
            ).decode()
        )
        return
    table = Table(title=f"{len(infos)} topics", show_lines=False)
    table.add_column("topic", style="cyan")
    table.add_column("partitions", justify="right")
    table.add_column("records", justify="right")
    for info in infos:
        table.add_row(info.name, str(info.partitions), fmt_count(info.messages))
    if infos:
        table.add_section()
        table.add_row("total", "", fmt_count(sum(t.messages for t in infos)), style="bold")
    console.print(table)


def _print_records(views: list[RecordView], as_json: bool) -> None:
    for v in views:
        if as_json:
            console.print_json(orjson.dumps(v.to_dict()).decode())
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v.timestamp_ms / 1000))
        head = f"[dim]{v.topic}[{v.partition}]@{v.offset} {when}Z[/] [bold]{v.op or 'raw'}[/] key={v.key}"
        console.print(head, highlight=False)
        if v.error:
            console.print(f"  [red]malformed:[/] {v.error}", highlight=False)
        elif isinstance(v.value, dict):
            row = v.value.get("after") or v.value.get("before")
            console.print(f"  {orjson.dumps(row).decode()}", highlight=False, soft_wrap=True)


@app.command("tail")
@handle_errors
def tail(
    topic: Annotated[str, typer.Argument(help="Topic name, e.g. vn.shop.orders")],
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent records (1-10000)")] = 10,
    partition: Annotated[int | None, typer.Option(help="Only this partition")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C stops)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per record")] = False,
) -> None:
    """Show the most recent records of a topic, decoded as Debezium change events."""
    with open_platform() as platform:
        _print_records(platform.events.tail(topic, limit, partition), as_json)
        if follow:
            try:
                for batch in platform.events.follow(topic, platform.event_log.end_offsets(topic)):
                    _print_records(batch, as_json)
            except KeyboardInterrupt:
                pass


@app.command("groups")
@handle_errors
def groups() -> None:
    """List consumer groups that have committed offsets."""
    with open_platform() as platform:
        for name in platform.events.groups():
            console.print(name)


@app.command("lag")
@handle_errors
def lag(
    group: Annotated[str, typer.Argument(help="Consumer group id, e.g. shopops-cdc-monitor")],
    all_partitions: Annotated[bool, typer.Option("--all", help="Also show partitions with no lag")] = False,
) -> None:
    """Show how far a consumer group is behind, per topic and partition."""
    with open_platform() as platform:
        rows = platform.events.lag(group)
    table = Table(title=f"lag of {group}")
    for col, justify in (
        ("topic", "left"),
        ("partition", "right"),
        ("committed", "right"),
        ("end offset", "right"),
        ("lag", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in rows:
        if p.lag or all_partitions:
            style = "red" if p.lag else None
            table.add_row(
                p.topic,
                str(p.partition),
                fmt_count(p.committed if p.committed is not None else "-"),
                fmt_count(p.end_offset),
                fmt_count(p.lag),
                style=style,
            )
    table.caption = f"total lag {sum(p.lag for p in rows):,} over {len(rows)} partitions"
    console.print(table)
