"""Reconciliation end to end at scale, beside a hand-written DuckDB key match (the floor).

    python bench/bench_reconciliation.py [--orders 10000000] [--days 30] [--data DIR] [--json out.json]

Generates ``--orders`` orders, about as many payments and two clearing-account ledger entries per
order over three regions (vn, sg, th) as Parquet in the canonical input layout, with breaks
injected at about the simulator's default rates (missing, orphan, late, cross-region and
duplicate payments, currency and amount mismatches, FX and rounding differences on settlements,
ledger breaks). The data is kept in ``--data`` (default: a directory under the system temp dir)
and reused by later runs with the same parameters.

Then, in the same process, one after the other:

- **floor**: one hand-written DuckDB SQL query over the same Parquet files doing the plain key
  match — orders FULL OUTER JOIN payments on the order id, LEFT JOIN the ledger's order journals
  per order — counting matched, missing and orphan orders. No classification, no explanation,
  nothing written.
- **bound**: hand-written DuckDB SQL doing the least any reconciliation must do, one statement per
  region (the faster layout): payments joined to their FX reference and checked row by row
  (late, other region, settlement off), then summed per order; clearing journals summed per order;
  orders joined to both; every class *counted*. No ids, no explanation, duplicates not told from
  partial captures, nothing written: a lower bound of the work, not a reconciliation.
- **shopops**: ``ReconciliationService.run`` over the whole window: the Ibis plan on DuckDB, every
  exception classified and explained, the summary per region-day, every partition written.

Targets (issue): the whole run under 10 s wall on 2 cores, and within 2x of the floor. The floor,
the bound and the run are measured ``--repeat`` times each, alternating; the best of each is
reported. The bound's ratio to the floor shows how much of the 2x any reconciliation has left for
ids, explanations and writing its results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from shopops.core.registry import BackendSelection
from shopops.reconciliation.rules import load_rules
from shopops.reconciliation.service import ReconciliationService
from shopops.reconciliation.tables import SCHEMAS

console = Console(width=max(Console().width, 120))
H = 3_600_000_000
REGIONS = {"vn": ("VND", 0, 7, 25_000.0), "sg": ("SGD", 2, 8, 1.34), "th": ("THB", 2, 7, 35.0)}
START = date(2026, 1, 1)
RATES = {
    "missing": 0.005,
    "orphan": 0.002,
    "late": 0.02,
    "cross": 0.01,
    "currency": 0.005,
    "amount": 0.002,
    "fx": 0.05,
    "rounding": 0.01,
    "ledger": 0.003,
    "duplicate": 0.001,
    "usd_settlement": 0.15,
}


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _money(values: np.ndarray, decimals: int) -> pa.Array:
    return pa.array(np.round(values, decimals)).cast(pa.decimal128(18, 4), safe=False)


def generate(root: Path, orders: int, days: int, seed: int = 7) -> None:
    """Write the input tables of three regions under ``root`` (``<region>/<table>.parquet``)."""
    rng = np.random.default_rng(seed)
    per_region = orders // len(REGIONS)
    epoch0 = (START - date(1970, 1, 1)).days
    codes = list(REGIONS)
    for code, (currency, decimals, offset_h, rate) in REGIONS.items():
        n = per_region
        num = np.arange(n, dtype=np.int64)
        local_midnight0 = epoch0 * 24 * H - offset_h * H
        created = local_midnight0 + rng.integers(0, days * 24 * H, n)
        scale = 10.0**-decimals
        base_amount = np.round(rng.lognormal(3.5, 0.8, n) * rate, decimals)
        total = np.maximum(base_amount, scale)
        order_id = _ids(f"{code}-o-", num)
        status = np.where(rng.random(n) < 0.98, "delivered", "placed")
        orders_t = pa.table(
            {
                "region": pa.repeat(pa.scalar(code), n),
                "order_id": order_id,
                "status": pa.array(status),
                "currency": pa.repeat(pa.scalar(currency), n),
                "total": _money(total, decimals),
                "created_at": pa.array(created),
                "updated_at": pa.array(created + 60_000_000),
            },
            schema=SCHEMAS["orders"],
        )

        # payments: one per order, then the pains
        u = rng.random(n)
        missing = u < RATES["missing"]
        late = (u >= RATES["missing"]) & (u < RATES["missing"] + RATES["late"])
        cross = (u >= 0.03) & (u < 0.03 + RATES["cross"])
        usd_pay = (u >= 0.05) & (u < 0.05 + RATES["currency"])
        off_amount = (u >= 0.06) & (u < 0.06 + RATES["amount"])
        keep = ~missing
        captured = created + 120_000_000
        pay_created = np.where(late | cross, captured + 30 * H, created + 60_000_000)
        pay_currency = np.where(usd_pay, "USD", currency)
        amount = np.where(usd_pay, np.round(total / rate, 2), total)
        amount = np.where(off_amount, np.round(amount * 0.9, decimals), amount)
        fee = np.zeros(n)
        net = amount - fee
        settle_usd = (rng.random(n) < RATES["usd_settlement"]) & ~usd_pay
        fx_off = settle_usd & (rng.random(n) < RATES["fx"])
        applied = np.where(fx_off, rate * 1.01, rate)
        settled_amount = np.where(settle_usd, np.round(net / applied, 2), net)
        rounding = rng.random(n) < RATES["rounding"]
        unit = np.where(settle_usd | usd_pay, 0.01, scale)
        settled_amount = np.where(rounding, settled_amount + unit, settled_amount)
        settle_currency = np.where(settle_usd | usd_pay, "USD", currency)
        settled_at = captured + rng.integers(2 * H, 30 * H, n) + np.where(late | cross, 30 * H, 0)
        other = np.array([c for c in codes if c != code])
        recorded_in = np.where(cross, other[rng.integers(0, len(other), n)], code)
        pay = {
            "region": pa.array(recorded_in),
            "payment_id": _ids(f"{code}-p-", num),
            "order_id": order_id,
            "merchant_region": pa.repeat(pa.scalar(code), n),
            "provider": pa.repeat(pa.scalar("Provider"), n),
            "provider_ref": _ids(f"{code}-ref-", num),
            "status": pa.repeat(pa.scalar("settled"), n),
            "currency": pa.array(pay_currency),
            "amount": _money(amount, 2),
            "fee": _money(fee, 2),
            "settlement_currency": pa.array(settle_currency),
            "settlement_amount": _money(settled_amount, 2),
            "settlement_fx_rate": pa.array(np.where(settle_usd, applied, np.nan), mask=~settle_usd),
            "refunded_amount": _money(np.zeros(n), 2),
            "captured_at": pa.array(captured),
            "settled_at": pa.array(settled_at),
            "created_at": pa.array(pay_created),
        }
        payments = pa.table(pay, schema=SCHEMAS["payments"]).filter(pa.array(keep))
        dup = payments.filter(pa.array(rng.random(payments.num_rows) < RATES["duplicate"]))
        n_orphan = int(n * RATES["orphan"])
        orphan_num = np.arange(n, n + n_orphan, dtype=np.int64)
        orphans = payments.slice(0, n_orphan).set_column(1, "payment_id", _ids(f"{code}-p-", orphan_num))
        orphans = orphans.set_column(2, "order_id", _ids(f"{code}-o-ghost-", orphan_num))
        payments = pa.concat_tables([payments, dup, orphans])

        # ledger: the order journal's clearing debit and the settlement journal's clearing credit
        booked = np.where(rng.random(n) < RATES["ledger"], np.round(total * 1.05, decimals), total)
        paid_rows = pa.table(
            {
                "region": pa.repeat(pa.scalar(code), n),
                "entry_id": _ids(f"{code}-e-", num),
                "journal_id": _ids(f"{code}-j-", num),
                "kind": pa.repeat(pa.scalar("order_paid"), n),
                "account": pa.repeat(pa.scalar("provider_clearing"), n),
                "side": pa.repeat(pa.scalar("debit"), n),
                "amount": _money(booked, decimals),
                "currency": pa.repeat(pa.scalar(currency), n),
                "order_id": order_id,
                "payment_id": _ids(f"{code}-p-", num),
                "booked_at": pa.array(created + 180_000_000),
            },
            schema=SCHEMAS["ledger_entries"],
        )
        settle_rows = paid_rows.set_column(1, "entry_id", _ids(f"{code}-es-", num))
        settle_rows = settle_rows.set_column(3, "kind", pa.repeat(pa.scalar("payment_settled"), n))
        settle_rows = settle_rows.set_column(5, "side", pa.repeat(pa.scalar("credit"), n))
        settle_rows = settle_rows.set_column(6, "amount", _money(total, decimals))
        settle_rows = settle_rows.set_column(10, "booked_at", pa.array(settled_at))
        ledger = pa.concat_tables([paid_rows, settle_rows.filter(pa.array(keep))])

        fx_days = np.arange(epoch0 - 1, epoch0 + days + 12, dtype=np.int32)
        fx_rows = [(code, int(d), "USD", REGIONS[c][0], REGIONS[c][3]) for d in fx_days for c in codes]
        fx = pa.table(
            {
                "region": pa.array([r[0] for r in fx_rows]),
                "rate_date": pa.array([r[1] for r in fx_rows], pa.int32()),
                "base": pa.array([r[2] for r in fx_rows]),
                "quote": pa.array([r[3] for r in fx_rows]),
                "rate": pa.array([r[4] for r in fx_rows], pa.float64()),
            },
            schema=SCHEMAS["fx_rates"],
        )
        out = root / code
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (
            ("orders", orders_t),
            ("payments", payments),
            ("ledger_entries", ledger),
            ("fx_rates", fx),
        ):
            pq.write_table(table, out / f"{name}.parquet", row_group_size=1_000_000)


FLOOR_SQL = """
SELECT
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND p.order_id IS NOT NULL) AS matched,
    count(*) FILTER (WHERE p.order_id IS NULL) AS without_payment,
    count(*) FILTER (WHERE o.order_id IS NULL) AS without_order,
    count(*) FILTER (WHERE l.order_id IS NULL) AS without_journal
FROM read_parquet($orders) o
FULL OUTER JOIN read_parquet($payments) p ON o.order_id = p.order_id
LEFT JOIN (
    SELECT order_id, sum(amount) AS booked FROM read_parquet($ledger)
    WHERE kind = 'order_paid' GROUP BY order_id
) l ON l.order_id = coalesce(o.order_id, p.order_id)
"""


BOUND_SQL = """
WITH fx AS (SELECT rate_date, quote, rate FROM read_parquet($fx) WHERE region = '{r}' AND base = 'USD'),
pay AS (
    SELECT p.order_id, p.currency, p.amount, p.settlement_amount,
        (p.created_at - coalesce(p.captured_at, p.created_at)) / 3.6e9 > {record_h}
            OR coalesce((p.settled_at - coalesce(p.captured_at, p.created_at)) / 3.6e9, 0) > {settle_h}
            AS late,
        p.region <> p.merchant_region AS other_region,
        CASE
            WHEN p.settlement_amount IS NULL THEN false
            WHEN p.settlement_currency = p.currency
                THEN p.settlement_amount <> p.amount - coalesce(p.fee, 0)
            ELSE abs(coalesce(p.settlement_fx_rate, fx.rate) / fx.rate - 1) > 1e-8
                OR abs(p.settlement_amount::double - CASE
                    WHEN p.settlement_currency = 'USD'
                        THEN (p.amount - coalesce(p.fee, 0))::double / coalesce(p.settlement_fx_rate, fx.rate)
                    ELSE (p.amount - coalesce(p.fee, 0))::double * coalesce(p.settlement_fx_rate, fx.rate)
                END) > 0.005 + 1e-9
        END AS settlement_off
    FROM read_parquet($payments) p
    LEFT JOIN fx ON p.settlement_currency <> p.currency
        AND fx.rate_date = (p.settled_at + {offset_us}) // 86400000000
        AND fx.quote = CASE WHEN p.currency = 'USD' THEN p.settlement_currency ELSE p.currency END
    WHERE p.merchant_region = '{r}'
),
per_pay AS (
    SELECT order_id AS p_order, count(*) AS n_pay,
        sum(round(amount * 10000)::bigint) FILTER (WHERE currency = '{currency}') AS amount_u,
        count(*) FILTER (WHERE currency <> '{currency}') AS n_other,
        count(settlement_amount) AS n_settled,
        count(*) FILTER (WHERE late OR other_region OR settlement_off) AS n_flagged
    FROM pay GROUP BY order_id
),
per_journal AS (
    SELECT order_id AS l_order,
        sum(round(amount * 10000)::bigint) FILTER (WHERE kind = '{order_journal}') AS booked_u,
        count(*) FILTER (WHERE kind = '{order_journal}') AS n_booked,
        count(*) FILTER (WHERE kind = '{settlement_journal}') AS n_settle_journals
    FROM read_parquet($ledger)
    WHERE region = '{r}' AND account = '{clearing}' AND order_id IS NOT NULL
        AND ((kind = '{order_journal}' AND side = 'debit')
            OR (kind = '{settlement_journal}' AND side = 'credit'))
    GROUP BY order_id
),
o AS (
    SELECT order_id, status IN ({paid}) AS paid, round(total * 10000)::bigint AS total_u
    FROM read_parquet($orders) WHERE region = '{r}'
)
SELECT
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND paid AND coalesce(n_pay, 0) = 0),
    count(*) FILTER (WHERE o.order_id IS NULL),
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND n_other > 0),
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND n_pay >= 1 AND n_other = 0 AND amount_u <> total_u),
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND paid AND coalesce(n_booked, 0) = 0),
    count(*) FILTER (WHERE o.order_id IS NOT NULL AND n_booked >= 1 AND booked_u <> total_u),
    count(*) FILTER (WHERE n_pay > 1 OR n_booked > 1),
    count(*) FILTER (WHERE n_settled > 0 AND coalesce(n_settle_journals, 0) = 0),
    coalesce(sum(n_flagged), 0)
FROM o
LEFT JOIN per_journal ON o.order_id = l_order
FULL JOIN per_pay ON o.order_id = p_order
"""

#: What each column of BOUND_SQL counts.
BOUND_COUNTS = (
    "missing_payment", "payment_without_order", "currency_mismatch", "amount_mismatch", "no_journal",
    "ledger_break", "several_payments_or_journals", "unbooked_settlement", "payments_flagged",
)  # fmt: skip


def _cpu() -> float:
    """CPU seconds of this process (every thread): less sensitive to a shared machine than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _inputs(root: Path) -> dict[str, list[str]]:
    """The Parquet files of every region, per query parameter ($orders, $payments, $ledger, $fx)."""
    tables = {"orders": "orders", "payments": "payments", "ledger": "ledger_entries", "fx": "fx_rates"}
    return {name: [str(root / r / f"{t}.parquet") for r in REGIONS] for name, t in tables.items()}


def floor(root: Path) -> tuple[float, float, dict[str, int]]:
    params = _inputs(root)
    del params["fx"]
    started, cpu = time.perf_counter(), _cpu()
    with duckdb.connect(config={"memory_limit": "8GB"}) as con:
        row = con.execute(FLOOR_SQL, params).fetchone()
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    assert row is not None
    return (
        seconds,
        cpu,
        dict(zip(("matched", "without_payment", "without_order", "without_journal"), row, strict=True)),
    )


def bound(root: Path) -> tuple[float, float, dict[str, int]]:
    """The lower bound (BOUND_SQL), one statement per region, its constants from the shipped rules."""
    params = _inputs(root)
    rules = load_rules(REGIONS)
    totals = dict.fromkeys(BOUND_COUNTS, 0)
    started, cpu = time.perf_counter(), _cpu()
    with duckdb.connect(config={"memory_limit": "8GB"}) as con:
        for code, r in rules.items():
            sql = BOUND_SQL.format(
                r=code,
                currency=r.currency,
                record_h=r.windows.record_within_hours,
                settle_h=r.windows.settle_within_hours,
                offset_us=r.utc_offset_us(START),
                order_journal=r.ledger.order_journal,
                settlement_journal=r.ledger.settlement_journal,
                clearing=r.ledger.clearing_account,
                paid=", ".join(f"'{s}'" for s in sorted(r.paid_statuses)),
            )
            row = con.execute(sql, params).fetchone()
            assert row is not None
            for name, value in zip(BOUND_COUNTS, row, strict=True):
                totals[name] += int(value)
    return time.perf_counter() - started, _cpu() - cpu, totals


def shopops_run(root: Path, home: Path, days: int, memory_limit: str = "8GB") -> tuple[float, float, Any]:
    service = ReconciliationService(
        home=home,
        engine=BackendSelection(type="duckdb", memory_limit=memory_limit),
        source=BackendSelection(type="parquet", path=str(root)),
    )
    try:
        started, cpu = time.perf_counter(), _cpu()
        report = service.run(START, START + timedelta(days=days - 1), list(REGIONS))
        return time.perf_counter() - started, _cpu() - cpu, report
    finally:
        service.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    data = args.data or Path(tempfile.gettempdir()) / f"shopops-bench-recon-{args.orders}-{args.days}"
    marker = data / "complete"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        started = time.perf_counter()
        with console.status(f"generating {args.orders:,} orders over {args.days} days in {data}"):
            generate(data, args.orders, args.days)
        marker.write_text("ok")
        console.print(f"generated in {time.perf_counter() - started:.1f} s")
    sizes = {
        t: sum(pq.ParquetFile(data / r / f"{t}.parquet").metadata.num_rows for r in REGIONS)
        for t in ("orders", "payments", "ledger_entries")
    }
    console.print(f"rows: {', '.join(f'{t} {n:,}' for t, n in sizes.items())}; {os.cpu_count()} cores")
    console.print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    floors, bounds, runs, floor_cpu, bound_cpu, run_cpu = [], [], [], [], [], []
    report: Any = None
    counts: dict[str, int] = {}
    bound_counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            seconds, cpu, counts = floor(data)
            floors.append(seconds)
            floor_cpu.append(cpu)
            seconds, cpu, bound_counts = bound(data)
            bounds.append(seconds)
            bound_cpu.append(cpu)
            seconds, cpu, report = shopops_run(data, Path(tmp) / f"home-{i}", args.days)
            runs.append(seconds)
            run_cpu.append(cpu)
    best_floor, best_bound, best_run = min(floors), min(bounds), min(runs)
    table = Table(title="reconciliation, 3 regions, end to end")
    for column in ("", "wall s (best)", "all runs", "vs floor", "CPU s (all runs)"):
        table.add_column(column, justify="right" if column else "left")
    for label, walls, cpus in (
        ("hand-written DuckDB key match (floor)", floors, floor_cpu),
        ("hand-written classification, counts only (lower bound)", bounds, bound_cpu),
        ("shopops reconcile (Ibis on DuckDB, classify, explain, store)", runs, run_cpu),
    ):
        table.add_row(
            label,
            f"{min(walls):.2f}",
            " ".join(f"{s:.2f}" for s in walls),
            f"{min(walls) / best_floor:.2f}x",
            " ".join(f"{s:.1f}" for s in cpus),
        )
    console.print(table)
    console.print(f"floor counts: {counts}")
    console.print(f"lower bound counts: {bound_counts}")
    console.print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    console.print(
        f"exceptions: {report.exceptions:,} in {report.partitions} partitions; by class: {report.by_class}"
    )
    verdict_wall = "met" if best_run < 10 else "missed"
    verdict_ratio = "met" if best_run <= 2 * best_floor else "missed"
    console.print(f"target < 10 s wall: {verdict_wall}; target within 2x of the floor: {verdict_ratio}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "orders": sizes["orders"],
                    "payments": sizes["payments"],
                    "ledger_entries": sizes["ledger_entries"],
                    "floor_s": floors,
                    "run_s": runs,
                    "floor_cpu_s": floor_cpu,
                    "bound_s": bounds,
                    "bound_cpu_s": bound_cpu,
                    "bound_ratio": best_bound / best_floor,
                    "run_cpu_s": run_cpu,
                    "load_average": os.getloadavg(),
                    "ratio": best_run / best_floor,
                    "exceptions": report.exceptions,
                    "by_class": report.by_class,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
