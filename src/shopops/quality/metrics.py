"""Prometheus metrics of the contract checks, per dataset and check."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shopops.quality.model import RunRecord

ROWS_CHECKED = Counter(
    "shopops_quality_rows_checked_total", "Rows checked against their data contract", ["dataset", "mode"]
)
ROWS_REJECTED = Counter(
    "shopops_quality_rows_rejected_total",
    "Micro-batch rows quarantined because they failed a contract check",
    ["dataset"],
)
CHECK_FAILED_ROWS = Counter(
    "shopops_quality_check_failed_rows_total", "Rows failing a contract check", ["dataset", "check", "mode"]
)
CHECK_PASSED = Gauge(
    "shopops_quality_check_passed",
    "Latest outcome of a contract check (1 passed, 0 failed)",
    ["dataset", "check", "mode"],
)
CHECK_OBSERVED = Gauge(
    "shopops_quality_check_observed",
    "Latest observed value of a contract check (failing rows, percent, row count or age in seconds)",
    ["dataset", "check", "mode"],
)
RUNS = Counter("shopops_quality_runs_total", "Contract check runs", ["dataset", "mode", "outcome"])
RUN_SECONDS = Histogram(
    "shopops_quality_run_duration_seconds",
    "Duration of a contract check run",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LAST_RUN = Gauge(
    "shopops_quality_last_run_timestamp_seconds", "When a dataset was last checked", ["dataset", "mode"]
)


def observe(run: RunRecord, rejected: int | None = None) -> None:
    """Export one run: rows, per-check outcomes and failing rows, duration."""
    ds, mode = run.dataset, run.mode
    ROWS_CHECKED.labels(ds, mode).inc(run.rows_checked)
    if rejected:
        ROWS_REJECTED.labels(ds).inc(rejected)
    for c in run.checks:
        if c.skipped:
            continue
        CHECK_PASSED.labels(ds, c.check, mode).set(1 if c.passed else 0)
        if c.observed is not None:
            CHECK_OBSERVED.labels(ds, c.check, mode).set(c.observed)
        if c.rows_failed:
            CHECK_FAILED_ROWS.labels(ds, c.check, mode).inc(c.rows_failed)
    RUNS.labels(ds, mode, run.outcome).inc()
    RUN_SECONDS.labels(mode).observe(max(0.0, (run.finished_at_ms - run.started_at_ms) / 1000))
    LAST_RUN.labels(ds, mode).set(run.finished_at_ms / 1000)
