"""The same Ibis plan on Spark (pyspark, local mode) gives exactly the DuckDB result."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.reconciliation.cases import DAY, build_cases

from shopops.core.registry import BackendSelection
from shopops.reconciliation.service import ReconciliationService

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")


@pytest.fixture(autouse=True, scope="module")
def _stop_spark() -> Iterator[None]:
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def _run(home: Path, engine: BackendSelection) -> tuple[set[tuple[str, str, str]], list[dict[str, object]]]:
    service = ReconciliationService(home=home, engine=engine, source=BackendSelection(type="parquet"))
    try:
        report = service.run(DAY, DAY, ["sg"])
        assert report.engine == engine.type
        rows = service.exceptions(limit=None).to_pylist()
        summary = service.summary().drop_columns([]).to_pylist()
    finally:
        service.close()
    return {(r["class"], r["record"], r["explanation"]) for r in rows}, summary


def test_spark_and_duckdb_agree(tmp_path: Path) -> None:
    _, expected = build_cases(tmp_path / "duck" / "reconciliation" / "input")
    shutil.copytree(
        tmp_path / "duck" / "reconciliation" / "input", tmp_path / "spark" / "reconciliation" / "input"
    )
    duck, duck_summary = _run(tmp_path / "duck", BackendSelection(type="duckdb"))
    spark, spark_summary = _run(tmp_path / "spark", BackendSelection(type="pyspark", master="local[2]"))
    assert {(c, r) for c, r, _ in duck} == set(expected)
    assert {(c, r) for c, r, _ in spark} == {(c, r) for c, r, _ in duck}
    # Explanations differ only in how each engine prints numbers (e.g. 1.0E-4 vs 0.0001).
    assert len(spark) == len(duck)
    assert spark_summary == duck_summary
