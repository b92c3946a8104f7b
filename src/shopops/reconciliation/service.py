"""The reconciliation service: run a window, store and serve the results, score them."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from shopops.catalog.port import ColumnEdge
from shopops.core.errors import InvalidInputError
from shopops.core.logging import get_logger
from shopops.core.registry import BackendSelection
from shopops.domain.regions import parse_regions
from shopops.events.port import EventLog
from shopops.reconciliation.engine import EXCEPTION_COLUMNS, build_plan
from shopops.reconciliation.engines import ENGINES, SOURCES, ComputeEngine
from shopops.reconciliation.export import export_from_events
from shopops.reconciliation.model import ExceptionClass, RegionRules, RunReport, Window
from shopops.reconciliation.rules import load_rules
from shopops.reconciliation.scoring import Score, score
from shopops.reconciliation.sources import InputSource
from shopops.reconciliation.store import ResultStore
from shopops.reconciliation.tables import CDC_TOPICS, OPTIONAL, REQUIRED, SCHEMAS

if TYPE_CHECKING:
    from shopops.catalog.port import LineageRecorder

log = get_logger("shopops.reconciliation")

RUNS = PromCounter("shopops_reconciliation_runs_total", "Reconciliation runs", ["status"])
RUN_SECONDS = Histogram(
    "shopops_reconciliation_run_duration_seconds",
    "Wall time of a reconciliation run",
    buckets=(0.5, 1, 2, 5, 10, 20, 60, 120, 300, 900),
)
OPEN_EXCEPTIONS = Gauge(
    "shopops_reconciliation_open_exceptions", "Open exceptions in the stored results", ["region", "class"]
)
OLDEST_OPEN = Gauge(
    "shopops_reconciliation_oldest_open_exception_seconds",
    "Age of the oldest open exception (since a run first saw it)",
    ["region"],
)

Progress = Callable[[str, int, int], None]
_EPOCH = date(1970, 1, 1)


class ReconciliationService:
    """Runs reconciliations with the configured engine, source and rules; serves the results."""

    def __init__(
        self,
        *,
        home: Path,
        engine: BackendSelection,
        source: BackendSelection,
        rules_dir: Path | None = None,
        results_dir: Path = Path("reconciliation/results"),
        event_log: EventLog | None = None,
        lineage: LineageRecorder | None = None,
    ) -> None:
        self.home = home
        self.engine_selection = engine
        self.engine: ComputeEngine = ENGINES.create(engine, home=home)
        self.source_selection = source
        self.source: InputSource = SOURCES.create(source, home=home)
        self.rules_dir = rules_dir
        self.store = ResultStore(results_dir if results_dir.is_absolute() else home / results_dir)
        self.event_log = event_log
        #: Records each export and run in the data catalog (inputs -> job -> outputs).
        self.lineage = lineage

    def close(self) -> None:
        self.store.close()

    # --- running ----------------------------------------------------------------------------------

    def rules(self, regions: list[str]) -> dict[str, RegionRules]:
        return load_rules(regions, self.rules_dir)

    def export_inputs(
        self, regions: list[str], progress: Callable[[str, dict[str, int]], None] | None = None
    ) -> dict[str, dict[str, int]]:
        """Build the Parquet input tables from the CDC topics of the event log."""
        root = getattr(self.source, "root", None)
        if self.event_log is None or root is None:
            raise InvalidInputError(
                "exporting inputs needs the event log and the parquet source",
                hint="set reconciliation.source.type = 'parquet'",
            )
        # One lineage run per region: each region's tables come from that region's topics only.
        done: list[str] = []
        started = [datetime.now(UTC)]

        def exported(region: str, counts: dict[str, int]) -> None:
            self._export_lineage(region, counts, started[0])
            done.append(region)
            started[0] = datetime.now(UTC)
            if progress is not None:
                progress(region, counts)

        try:
            return export_from_events(self.event_log, regions, root, exported)
        except Exception as exc:
            if len(done) < len(regions):
                self._export_lineage(regions[len(done)], {}, started[0], f"{type(exc).__name__}: {exc}")
            raise

    def run(
        self,
        start: date,
        end: date,
        regions: list[str] | str,
        progress: Progress | None = None,
    ) -> RunReport:
        """Reconcile ``regions`` over business days ``start``..``end`` and store the results."""
        codes = [r.code for r in parse_regions(regions)]
        window = Window(start, end)
        step = progress or (lambda _stage, _done, _total: None)
        rules = self.rules(codes)
        report = RunReport(
            run_id=f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
            window=window,
            regions=codes,
            engine=self.engine.name,
            rules={code: r.ref for code, r in rules.items()},
            started_at=datetime.now(UTC),
        )
        started = time.perf_counter()
        self.store.start_run(report)
        try:
            step("read inputs", 0, 4)
            con = self.engine.connect()
            try:
                inputs = self.source.inputs(con, codes)
                plan = build_plan(inputs, rules, window)
                step("match and classify", 1, 4)
                exceptions = _finish_exceptions(plan.exceptions.to_pyarrow())
                step("summarise", 2, 4)
                order_days = plan.order_days.to_pyarrow()
                for table in plan.cached:
                    table.release()
            finally:
                self.engine.close(con)
            summary = _summary(order_days, exceptions, codes, window)
            step("write results", 3, 4)
            partitions, resolved = self.store.replace_partitions(
                exceptions, summary, codes, window.dates(), report.started_at
            )
            step("done", 4, 4)
        except BaseException as exc:
            report.seconds = time.perf_counter() - started
            self.store.finish_run(report, "failed", str(exc))
            RUNS.labels("failed").inc()
            self._run_lineage(report, f"{type(exc).__name__}: {exc}")
            raise
        report.seconds = time.perf_counter() - started
        report.orders = int(pc.sum(summary.column("orders")).as_py() or 0)
        report.exceptions = exceptions.num_rows
        counts = pc.value_counts(exceptions.column("class")).to_pylist()
        report.by_class = {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: c["values"])}
        report.partitions = partitions
        self.store.finish_run(report, "succeeded")
        RUNS.labels("succeeded").inc()
        RUN_SECONDS.observe(report.seconds)
        self.refresh_metrics()
        self._run_lineage(report)
        log.info(
            "reconciliation run finished",
            run_id=report.run_id,
            seconds=round(report.seconds, 3),
            exceptions=report.exceptions,
            resolved=resolved,
        )
        return report

    # --- lineage (catalog names: reconciliation.input.<region>.<table>, .results.<region>.<what>) --

    def _export_lineage(
        self, region: str, counts: dict[str, int], started: datetime, error: str | None = None
    ) -> None:
        if self.lineage is None:
            return
        inputs = [f"{region}.{topic}" for topic, _ in CDC_TOPICS.values()]
        outputs = [f"reconciliation.input.{region}.{t}" for t in (*CDC_TOPICS, "duplicates")]
        columns = [
            ColumnEdge(f"{region}.{topic}", col, f"reconciliation.input.{region}.{table}", col)
            for table, (topic, _) in CDC_TOPICS.items()
            for col in SCHEMAS[table].names
            if col != "region"  # the region comes from the topic's name
        ]
        self.lineage.record_run(
            "reconciliation.export", inputs, outputs, column_lineage=columns, facets={"region": region},
            started_at=started, error=error,
            output_rows={f"reconciliation.input.{region}.{t}": n for t, n in counts.items()},
            description="Current-state input tables of reconciliation built from the CDC topics",
        )  # fmt: skip

    def _run_lineage(self, report: RunReport, error: str | None = None) -> None:
        if self.lineage is None:
            return
        codes = report.regions
        root = getattr(self.source, "root", None)
        if isinstance(root, Path):
            payers = self.source.available_regions()
            inputs = [
                f"reconciliation.input.{r}.{t}"
                for t in (*REQUIRED, *OPTIONAL)
                for r in (payers if t == "payments" else codes)
                if (root / r / f"{t}.parquet").exists()
            ]
        else:  # tables of the engine's catalog, named by the source's template
            cfg: Any = getattr(self.source, "config", None)
            template, database = getattr(cfg, "table_template", "{table}"), getattr(cfg, "database", None)
            inputs = [
                f"{database}.{template.format(table=t)}" if database else template.format(table=t)
                for t in REQUIRED
            ]
        outputs = [f"reconciliation.results.{r}.{what}" for r in codes for what in ("exceptions", "summary")]
        facets = {
            "reconciliation_run_id": report.run_id,
            "window": f"{report.window.start}..{report.window.end}",
            "regions": codes,
            "engine": report.engine,
            "rules": report.rules,
            "orders": report.orders,
            "exceptions": report.exceptions,
        }
        self.lineage.record_run(
            "reconciliation.run", inputs, outputs, facets=facets, started_at=report.started_at, error=error,
            description="Orders, payments and ledger entries matched across regions; exceptions explained",
        )  # fmt: skip

    def refresh_metrics(self) -> None:
        """Set the open-exception gauges from the stored results."""
        now = datetime.now(UTC)
        OPEN_EXCEPTIONS.clear()
        OLDEST_OPEN.clear()
        oldest: dict[str, datetime] = {}
        for region, cls, count, since in self.store.open_by_class():
            OPEN_EXCEPTIONS.labels(region, cls).set(count)
            if since is not None:
                since = since if since.tzinfo else since.replace(tzinfo=UTC)
                oldest[region] = min(oldest.get(region, since), since)
        for region, since in oldest.items():
            OLDEST_OPEN.labels(region).set((now - since).total_seconds())

    # --- reading ----------------------------------------------------------------------------------

    def exceptions(
        self,
        *,
        regions: list[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        classes: list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pa.Table:
        return self.store.query(
            "exceptions", regions=regions, start=start, end=end, classes=classes, limit=limit, offset=offset
        )

    def summary(
        self, *, regions: list[str] | None = None, start: date | None = None, end: date | None = None
    ) -> pa.Table:
        return self.store.query("summary", regions=regions, start=start, end=end)

    def ageing(self) -> list[dict[str, Any]]:
        """Open exceptions per region and age bucket (days since a run first saw them)."""
        table = self.store.query("exceptions")
        if table.num_rows == 0:
            return []
        now = datetime.now(UTC)
        buckets: Counter[tuple[str, str, str]] = Counter()
        for region, cls, since in zip(
            table.column("region").to_pylist(),
            table.column("class").to_pylist(),
            table.column("open_since").to_pylist(),
            strict=True,
        ):
            age = (now - since).days if since is not None else 0
            bucket = "0-1d" if age < 1 else "1-7d" if age < 7 else "7-30d" if age < 30 else ">30d"
            buckets[(region, cls, bucket)] += 1
        return [{"region": r, "class": c, "age": b, "open": n} for (r, c, b), n in sorted(buckets.items())]

    def export(
        self,
        kind: Literal["exceptions", "summary"],
        fmt: Literal["csv", "parquet"],
        dest: Path,
        **filters: Any,
    ) -> int:
        """Write stored rows to ``dest`` as CSV or Parquet; returns the row count."""
        table = self.store.query(kind, **filters)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            pacsv.write_csv(table, dest)
        else:
            pq.write_table(table, dest)
        return int(table.num_rows)

    def score(self, truth_dir: Path, start: date, end: date, regions: list[str]) -> Score:
        """Score the stored exceptions of the window against the simulator's ground truth."""
        table = self.store.query("exceptions", regions=regions, start=start, end=end)
        if table.num_rows == 0:
            table = pa.table(
                {
                    "class": pa.array([], pa.string()),
                    "record": pa.array([], pa.string()),
                    "explanation": pa.array([], pa.string()),
                }
            )
        return score(table, truth_dir, regions)


def _finish_exceptions(raw: pa.Table) -> pa.Table:
    """Drop repeats of an exception id (a record given twice in the inputs) and add the date.

    ``raw`` comes sorted by region, business day and exception id (the plan orders it), so it
    is not sorted again here.
    """
    days = raw.column("business_day").cast(pa.int32()).cast(pa.date32())
    out = raw.append_column("business_date", days).drop_columns(["business_day"])
    out = out.select([c if c != "business_day" else "business_date" for c in EXCEPTION_COLUMNS])
    if out.num_rows > 1:
        ids = out.column("exception_id").combine_chunks()
        repeat = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
        if repeat.true_count:  # filtering copies every column: only when there is a repeat
            out = out.filter(pa.concat_arrays([pa.array([True]), pc.invert(repeat)]))
    return out


def _summary(order_days: pa.Table, exceptions: pa.Table, regions: list[str], window: Window) -> pa.Table:
    """One row per region and day of the window: orders, matched orders, exceptions by class.

    The exceptions are reduced by two group-bys (per class and severity; distinct broken orders)
    to at most a few hundred rows, which are then laid onto the region-day grid.
    """
    keys = ["region", "business_date"]
    grid = [(r, d) for r in sorted(regions) for d in window.dates()]
    days: dict[tuple[str, date], tuple[int, int, float]] = {}
    if order_days.num_rows:
        for row in order_days.select(
            ["region", "business_day", "orders", "paid_orders", "order_total"]
        ).to_pylist():
            day = _EPOCH + timedelta(days=int(row["business_day"]))
            total = row["order_total"]
            days[(row["region"], day)] = (int(row["orders"]), int(row["paid_orders"] or 0), float(total or 0))
    per_class: dict[tuple[str, date], Counter[str]] = {}
    breaks: Counter[tuple[str, date]] = Counter()
    broken: dict[tuple[str, date], int] = {}
    if exceptions.num_rows:
        counts = exceptions.group_by([*keys, "class", "severity"]).aggregate([("exception_id", "count")])
        for row in counts.to_pylist():
            key = (row["region"], row["business_date"])
            per_class.setdefault(key, Counter())[row["class"]] += row["exception_id_count"]
            if row["severity"] == "break":
                breaks[key] += row["exception_id_count"]
        of_orders = exceptions.filter(
            pc.and_(
                pc.equal(exceptions.column("severity"), "break"), pc.is_valid(exceptions.column("order_id"))
            )
        )
        for row in of_orders.group_by(keys).aggregate([("order_id", "count_distinct")]).to_pylist():
            broken[(row["region"], row["business_date"])] = row["order_id_count_distinct"]
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "region",
            "business_date",
            "orders",
            "paid_orders",
            "order_total",
            "matched_orders",
            "exceptions",
            "breaks",
        )
    }
    columns.update({cls.value: [] for cls in ExceptionClass})
    for key in grid:
        orders, paid, total = days.get(key, (0, 0, 0.0))
        found = per_class.get(key, Counter())
        columns["region"].append(key[0])
        columns["business_date"].append(key[1])
        columns["orders"].append(orders)
        columns["paid_orders"].append(paid)
        columns["order_total"].append(total)
        columns["matched_orders"].append(max(orders - broken.get(key, 0), 0))
        columns["exceptions"].append(sum(found[cls.value] for cls in ExceptionClass))
        columns["breaks"].append(breaks[key])
        for cls in ExceptionClass:
            columns[cls.value].append(found[cls.value])
    types = {"region": pa.string(), "business_date": pa.date32(), "order_total": pa.float64()}
    return pa.table({name: pa.array(values, types.get(name, pa.int64())) for name, values in columns.items()})
