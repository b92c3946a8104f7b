"""Contract checks: rows/s of a whole-table run of the ``shop.order_lines`` contract on 10M rows.

    python bench/bench_quality.py [--rows 10000000] [--repeat 1] [--json out.json]

A synthetic order-lines table of ``--rows`` rows (two regions; one row in 10,000 made bad: negative
quantity, negative price, bad currency) is generated once and cached as Parquet under
``$TMPDIR/shopops-bench-quality/``. Measured in the same run, on the same Arrow table in memory:

- **contract**: ``ContractChecker.check_table`` with the shipped contract (pandera on Ibis/DuckDB
  for the row checks, DuckDB for the SQL rules, row count and freshness) — every check, exact
  failing-row counts and sampled failing keys with their reasons;
- **baseline**: the same checks as one hand-written DuckDB query of ``COUNT(*) FILTER (...)``
  aggregates (plus the two uniqueness group-bys): counts only, no failing keys, no reasons.

Foreign keys are left out of both (they need the orders and products tables).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from shopops.core.logging import configure_logging
from shopops.quality.checker import ContractChecker
from shopops.quality.contracts import lint_paths

console = Console()
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
START_US = 1_767_200_000_000_000  # 2025-12-31


def _strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, built in Arrow (no Python loop over 10M rows)."""
    digits = pc.utf8_lpad(pa.array(numbers.astype(str)), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def generate(rows: int, path: Path) -> None:
    rng = np.random.default_rng(7)
    half = rows // 2
    region = np.where(np.arange(rows) < half, "vn", "sg")
    local = np.where(np.arange(rows) < half, np.arange(rows), np.arange(rows) - half)
    order_no = local // 3
    line_no = (local % 3 + 1).astype(np.int32)
    quantity = rng.integers(1, 5, rows).astype(np.int32)
    price = rng.integers(1, 2000, rows) * 100
    bad = rng.random(rows) < 0.0001
    kinds = rng.integers(0, 3, rows)
    quantity = np.where(bad & (kinds == 0), -quantity, quantity).astype(np.int32)
    price_text = pa.array(price.astype(str))
    price_text = pc.if_else(
        pa.array(bad & (kinds == 1)), pc.binary_join_element_wise("-", price_text, ""), price_text
    )
    currency = np.where(region == "vn", "VND", "SGD")
    currency = np.where(bad & (kinds == 2), "XXX", currency)
    regions = pa.array(region)
    order_ids = pc.binary_join_element_wise(regions, _strings("-o-", order_no, 9), "")
    table = pa.table(
        {
            "line_id": pc.binary_join_element_wise(order_ids, pa.array(line_no.astype(str)), "-"),
            "order_id": order_ids,
            "line_no": pa.array(line_no),
            "product_id": pc.binary_join_element_wise(
                regions, _strings("-p-", rng.integers(1, 300, rows), 5), ""
            ),
            "sku": _strings("VN-SKU-", rng.integers(1, 300, rows), 5),
            "quantity": pa.array(quantity),
            "unit_price": price_text,
            "discount": pa.array(np.zeros(rows, dtype=np.int64).astype(str)),
            "line_total": pa.array((price * np.abs(quantity)).astype(str)),
            "currency": pa.array(currency),
            "created_at": pa.array(START_US + np.arange(rows) * 50, pa.timestamp("us", tz="UTC")),
            "_region": regions,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


BASELINE = r"""
WITH t AS (SELECT * FROM lines),
pk AS (SELECT COUNT(*) AS n FROM (SELECT _region, line_id FROM t GROUP BY ALL HAVING COUNT(*) > 1)),
uq AS (SELECT COUNT(*) AS n FROM (
    SELECT _region, order_id, line_no FROM t WHERE order_id IS NOT NULL AND line_no IS NOT NULL
    GROUP BY ALL HAVING COUNT(*) > 1))
SELECT
  COUNT(*) FILTER (WHERE line_id IS NULL), COUNT(*) FILTER (WHERE order_id IS NULL),
  COUNT(*) FILTER (WHERE line_no IS NULL), COUNT(*) FILTER (WHERE product_id IS NULL),
  COUNT(*) FILTER (WHERE sku IS NULL), COUNT(*) FILTER (WHERE quantity IS NULL),
  COUNT(*) FILTER (WHERE unit_price IS NULL), COUNT(*) FILTER (WHERE discount IS NULL),
  COUNT(*) FILTER (WHERE line_total IS NULL), COUNT(*) FILTER (WHERE currency IS NULL),
  COUNT(*) FILTER (WHERE created_at IS NULL),
  COUNT(*) FILTER (WHERE line_no < 1),
  COUNT(*) FILTER (WHERE quantity < 1 OR quantity > 1000),
  COUNT(*) FILTER (WHERE NOT regexp_matches(unit_price, '^-?[0-9]+(\.[0-9]+)?$')),
  COUNT(*) FILTER (WHERE TRY_CAST(unit_price AS DECIMAL(38, 6)) < 0),
  COUNT(*) FILTER (WHERE NOT regexp_matches(discount, '^[0-9]+(\.[0-9]+)?$')),
  COUNT(*) FILTER (WHERE NOT regexp_matches(line_total, '^-?[0-9]+(\.[0-9]+)?$')),
  COUNT(*) FILTER (WHERE currency NOT IN ('VND', 'SGD', 'THB', 'MYR', 'IDR', 'PHP')),
  COUNT(*), MAX(created_at),
  (SELECT n FROM pk), (SELECT n FROM uq)
FROM t
"""


def run_baseline(table: pa.Table) -> tuple[float, tuple[Any, ...]]:
    con = duckdb.connect()
    con.register("lines", table)
    start = time.perf_counter()
    row = con.execute(BASELINE).fetchall()[0]
    seconds = time.perf_counter() - start
    con.close()
    return seconds, row


def run_contract(table: pa.Table, now_ms: int) -> tuple[float, Any]:
    contracts = lint_paths([CONTRACTS]).contracts
    checker = ContractChecker(contracts)
    start = time.perf_counter()
    run = checker.check_table("shop.order_lines", table, now_ms=now_ms)
    seconds = time.perf_counter() - start
    checker.close()
    return seconds, run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING", "console")

    cache = Path(tempfile.gettempdir()) / "shopops-bench-quality" / f"order_lines_{args.rows}.parquet"
    if not cache.exists():
        with console.status(f"generating {args.rows:,} order lines into {cache}"):
            generate(args.rows, cache)
    table = pq.read_table(cache)
    now_ms = (START_US + args.rows * 50) // 1000 + 60_000
    results: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        base_s, counts = run_baseline(table)
        contract_s, run = run_contract(table, now_ms)
        failed = {c.check: c.rows_failed for c in run.checks if not c.passed}
        assert failed.get("quantity.range") == counts[12], (failed, counts)
        assert failed.get("unit_price_not_negative") == counts[14], (failed, counts)
        assert failed.get("currency_accepted_values") == counts[17], (failed, counts)
        results.append(
            {
                "rows": table.num_rows,
                "checks": len(run.checks),
                "failing_rows": run.rows_failed,
                "contract_s": contract_s,
                "contract_rows_per_s": table.num_rows / contract_s,
                "baseline_s": base_s,
                "baseline_rows_per_s": table.num_rows / base_s,
            }
        )
    size = f"{table.num_rows:,} rows ({table.nbytes / 1e9:.2f} GB in Arrow)"
    out = Table(title=f"contract check of shop.order_lines, {size}")
    for col in ("run", "seconds", "rows/s", "what"):
        out.add_column(col, justify="right" if col in ("seconds", "rows/s") else "left")
    for r in results:
        out.add_row(
            "contract (pandera on Ibis/DuckDB)", f"{r['contract_s']:.2f}", f"{r['contract_rows_per_s']:,.0f}",
            f"{r['checks']} checks, exact counts, {r['failing_rows']:,} failing rows with keys and reasons",
        )  # fmt: skip
        out.add_row(
            "baseline (one DuckDB query)", f"{r['baseline_s']:.2f}", f"{r['baseline_rows_per_s']:,.0f}",
            "the same checks' counts only",
        )  # fmt: skip
    console.print(out)
    best = max(results, key=lambda r: r["contract_rows_per_s"])
    console.print(f"contract / baseline: {best['contract_rows_per_s'] / best['baseline_rows_per_s']:.2f}x")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
