"""`shopops inventory …`: stock, reservations, the sweeper and the audit from the command line.

Thin: every command calls the platform's :class:`~shopops.inventory.service.InventoryService`
(``platform.inventory``) and prints what it returns; errors exit with the error tree's codes
(2 bad input, 3 not found, 4 conflict such as insufficient stock, 69 backend unavailable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from shopops.cli.common import console, handle_errors
from shopops.cli.context import open_platform
from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.domain.regions import parse_regions
from shopops.inventory.bursts import BurstOutcome, replay_checkout_bursts
from shopops.inventory.cdc import read_cdc_stock
from shopops.inventory.model import Reservation, ReservationLine, StockLevel
from shopops.inventory.service import InventoryService

app = typer.Typer(
    help="Inventory reservations: stock per SKU and warehouse, holds with a TTL, confirmations.",
    no_args_is_help=True,
)

_LINE = re.compile(r"^(?P<sku>[^@:\s]+)@(?P<warehouse>[^@:\s]+)(?::(?P<quantity>-?\d+))?$")


@contextmanager
def _inventory() -> Iterator[InventoryService]:
    with open_platform() as platform:
        yield platform.inventory


def parse_line(text: str) -> ReservationLine:
    """``SKU@WAREHOUSE[:QUANTITY]`` (quantity 1 when left out) as a reservation line."""
    match = _LINE.match(text)
    if match is None:
        raise InvalidInputError(
            f"invalid line {text!r}", hint="write SKU@WAREHOUSE:QUANTITY, e.g. TSHIRT-M@hcm-1:2"
        )
    return ReservationLine(match["sku"], match["warehouse"], int(match["quantity"] or 1))


def _print_reservation(reservation: Reservation) -> None:
    console.print_json(orjson.dumps(reservation.to_dict()).decode())


def _print_levels(levels: list[StockLevel], as_json: bool) -> None:
    if as_json:
        console.print_json(orjson.dumps([level.to_dict() for level in levels]).decode())
        return
    table = Table(title=f"{len(levels)} items")
    for column in ("sku", "warehouse", "on hand", "committed", "held", "available", "blocked"):
        table.add_column(column, justify="left" if column in ("sku", "warehouse") else "right")
    for lv in levels:
        style = "red" if lv.oversubscribed else None
        table.add_row(
            lv.key.sku,
            lv.key.warehouse,
            str(lv.on_hand),
            str(lv.committed),
            str(lv.held),
            str(lv.available),
            str(lv.blocked),
            style=style,
        )
    console.print(table)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@app.command("stock")
@handle_errors
def stock(sku: Annotated[str, typer.Argument(help="The SKU")], as_json: JsonOption = False) -> None:
    """Stock of a SKU in every warehouse: on hand, committed, held, available."""
    with _inventory() as svc:
        _print_levels(svc.stock(sku), as_json)


@app.command("set-stock")
@handle_errors
def set_stock(
    sku: str,
    warehouse: str,
    on_hand: int,
    reason: Annotated[str, typer.Option(help="Why, for the StockAdjusted event")] = "manual",
) -> None:
    """Set the units on hand of an item (a stock count)."""
    with _inventory() as svc:
        change = svc.set_stock(sku, warehouse, on_hand, reason)
    console.print_json(orjson.dumps(change.to_dict()).decode())


@app.command("adjust-stock")
@handle_errors
def adjust_stock(
    sku: str,
    warehouse: str,
    by: Annotated[int, typer.Option("--by", help="Units to add (restock) or remove (e.g. --by -2)")],
    reason: Annotated[str, typer.Option(help="Why, for the StockAdjusted event")] = "manual",
) -> None:
    """Add or remove units on hand."""
    with _inventory() as svc:
        change = svc.adjust_stock(sku, warehouse, by, reason)
    console.print_json(orjson.dumps(change.to_dict()).decode())


@app.command("reserve")
@handle_errors
def reserve(
    lines: Annotated[list[str], typer.Argument(help="SKU@WAREHOUSE:QUANTITY, one or more")],
    key: Annotated[str, typer.Option("--key", help="Idempotency key: repeating it never reserves twice")],
    ttl_s: Annotated[float, typer.Option("--ttl-s", help="How long the hold lasts, in seconds")] = 900.0,
) -> None:
    """Hold every line for the TTL, or nothing (exit 4 with what is available when short)."""
    parsed = [parse_line(text) for text in lines]
    with _inventory() as svc:
        _print_reservation(svc.reserve(parsed, round(ttl_s * 1000), key))


@app.command("get")
@handle_errors
def get(reservation_id: str) -> None:
    """A reservation as of now (a hold past its TTL shows as expired)."""
    with _inventory() as svc:
        _print_reservation(svc.get(reservation_id))


@app.command("confirm")
@handle_errors
def confirm(reservation_id: str) -> None:
    """Turn a hold into committed stock."""
    with _inventory() as svc:
        _print_reservation(svc.confirm(reservation_id))


@app.command("release")
@handle_errors
def release(reservation_id: str) -> None:
    """Give a hold's units back."""
    with _inventory() as svc:
        _print_reservation(svc.release(reservation_id))


@app.command("extend")
@handle_errors
def extend(
    reservation_id: str,
    ttl_s: Annotated[float, typer.Option("--ttl-s", help="Hold until now + this many seconds")] = 900.0,
) -> None:
    """Make a hold last longer."""
    with _inventory() as svc:
        _print_reservation(svc.extend(reservation_id, round(ttl_s * 1000)))


@app.command("cancel")
@handle_errors
def cancel(reservation_id: str) -> None:
    """Cancel a confirmed reservation: its units become available again."""
    with _inventory() as svc:
        _print_reservation(svc.cancel(reservation_id))


@app.command("sweep")
@handle_errors
def sweep() -> None:
    """Expire every hold past its TTL and publish pending events, once."""
    with _inventory() as svc:
        runner = svc.sweeper()
        expired, published = runner.run_once()
    console.print(f"expired {expired} holds, published {published} events")


@app.command("prune")
@handle_errors
def prune(
    retention_days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Delete reservations settled more than this many days ago "
            "(default: reservations.retention_days; 0: every settled one)",
        ),
    ] = None,
) -> None:
    """Delete released, expired and cancelled reservations past the retention, with their
    idempotency keys (held and confirmed ones stay; stock does not change)."""
    with open_platform() as platform:
        days = platform.settings.reservations.retention_days if retention_days is None else retention_days
        if retention_days is None and not days:
            raise InvalidInputError(
                "retention is off (reservations.retention_days = 0): nothing is pruned",
                hint="pass --retention-days N to prune reservations settled more than N days ago",
            )
        with console.status("pruning settled reservations"):
            deleted = platform.inventory.prune_settled(round(days * 86_400_000))
    noun = "reservation" if deleted == 1 else "reservations"
    console.print(f"deleted {deleted:,} {noun} settled more than {days:g} days ago")


@app.command("audit")
@handle_errors
def audit(
    grace_ms: Annotated[int, typer.Option(help="How long past its TTL a hold may stay unswept")] = 2_000,
    from_cdc: Annotated[
        bool, typer.Option("--from-cdc", help="Also compare on-hand units with the CDC stock_levels stream")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Holds that outlived their TTL, stock drifted from the CDC source, oversubscribed items, blocked
    oversell attempts (exit 1 if any hold or item needs attention)."""
    with open_platform() as platform:
        source = read_cdc_stock(platform.event_log).on_hand if from_cdc else None
        report = platform.inventory.audit(source_on_hand=source, grace_ms=grace_ms)
    if as_json:
        console.print_json(orjson.dumps(report.to_dict()).decode())
    else:
        console.print(f"overdue holds: {len(report.overdue_holds)}")
        for res in report.overdue_holds:
            console.print(
                f"  {res.id} expired at {res.expires_at_ms}, {report.at_ms - res.expires_at_ms} ms ago"
            )
        if from_cdc:
            console.print(f"items drifted from the CDC source: {len(report.drift)}")
            for drift in report.drift[:20]:
                console.print(
                    f"  {drift.key}: store {drift.store_on_hand}, "
                    f"source {drift.source_on_hand} ({drift.delta:+d})"
                )
        console.print(f"oversubscribed items: {len(report.oversubscribed)}")
        for level in report.oversubscribed:
            console.print(f"  {level.key}: {level.oversubscribed} units promised beyond on hand")
        console.print(f"oversell attempts blocked: {report.blocked_total}")
        console.print(f"events waiting to be published: {report.outbox_pending}")
    if not report.ok:
        raise typer.Exit(1)


def print_burst_outcomes(outcomes: list[BurstOutcome]) -> None:
    """A table of replayed checkout bursts: legacy oversell beside shopops's."""
    table = Table(title=f"{len(outcomes)} checkout bursts replayed against the reservation engine")
    for column in (
        "burst",
        "sku",
        "warehouse",
        "units",
        "carts",
        "legacy sold",
        "legacy oversold",
        "shopops sold",
        "shopops oversold",
    ):
        table.add_column(column, justify="left" if column in ("burst", "sku", "warehouse") else "right")
    for o in outcomes:
        table.add_row(
            o.burst_id,
            o.sku,
            o.warehouse,
            str(o.units_available),
            str(o.attempts),
            str(o.legacy_accepted),
            f"[red]{o.legacy_oversold}[/]" if o.legacy_oversold else "0",
            str(o.shopops_accepted),
            f"[red]{o.shopops_oversold}[/]" if o.shopops_oversold else "[green]0[/]",
        )
    if outcomes:
        table.add_section()
        table.add_row(
            "total",
            "",
            "",
            str(sum(o.units_available for o in outcomes)),
            str(sum(o.attempts for o in outcomes)),
            str(sum(o.legacy_accepted for o in outcomes)),
            str(sum(o.legacy_oversold for o in outcomes)),
            str(sum(o.shopops_accepted for o in outcomes)),
            str(sum(o.shopops_oversold for o in outcomes)),
            style="bold",
        )
    console.print(table)


@app.command("bursts")
@handle_errors
def bursts(
    concurrency: Annotated[int, typer.Option(help="Threads firing each burst's carts at once")] = 16,
    truth_dir: Annotated[
        Path | None, typer.Option(help="Ground truth of `shopops simulate` (default $SHOPOPS_HOME/truth)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the simulator's checkout bursts (many carts, last units) against the reservations."""
    with open_platform() as platform:
        path = (truth_dir or platform.truth_dir) / "checkout_bursts.parquet"
        outcomes = replay_checkout_bursts(platform.inventory, path, concurrency=concurrency)
    if as_json:
        console.print_json(orjson.dumps([o.to_dict() for o in outcomes]).decode())
    else:
        print_burst_outcomes(outcomes)
    if any(o.shopops_oversold for o in outcomes):
        raise typer.Exit(1)


@app.command("sync-cdc")
@handle_errors
def sync_cdc(
    regions: Annotated[str | None, typer.Option(help="Only these regions, e.g. vn,sg")] = None,
) -> None:
    """Set on-hand units to what the CDC stock_levels streams last said (restock/adjust from CDC)."""
    with open_platform() as platform:
        wanted = [r.code for r in parse_regions(regions)] if regions else None
        snapshot = read_cdc_stock(platform.event_log, wanted)
        if not snapshot.topics:
            raise NotFoundError(
                "no <region>.inventory.stock_levels topic in the event log",
                hint="run `shopops simulate` first",
            )
        changes = platform.inventory.sync_stock(snapshot.on_hand, reason="cdc")
    console.print(
        f"{len(snapshot.on_hand):,} items from {snapshot.events:,} change events in {len(snapshot.topics)} "
        f"topics; {len(changes):,} items changed; {snapshot.skipped:,} records skipped"
    )
    if snapshot.negative:
        console.print(
            f"[yellow]{len(snapshot.negative)} items are below zero in the source system (it oversold); "
            "they were set to 0 on hand:[/]"
        )
        for key, units in sorted(snapshot.negative.items())[:20]:
            console.print(f"  {key}: {units}")
