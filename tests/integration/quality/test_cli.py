"""`shopops contracts` in-process: error paths and JSON shapes (the subprocess tests are in tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.integration.quality.world import BadWorld
from typer.testing import CliRunner

from shopops.cli.main import app

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SHOPOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPOPS_QUALITY__CONTRACTS_DIR", str(CONTRACTS))
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def test_lint_json_and_a_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "x.yaml"
    broken.write_text("apiVersion: v3.1.0\nkind: DataContract\nversion: 1.0.0\n")
    result = runner.invoke(app, ["contracts", "lint", str(broken), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["errors"] >= 2
    assert {
        "missing required field 'id'",
        "a contract needs a schema with one object: the dataset it governs",
    } <= {i["message"] for i in doc["issues"]}
    missing = runner.invoke(app, ["contracts", "lint", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "no such file or folder" in missing.stderr


def test_check_parquet_then_results(runner: CliRunner, tmp_path: Path, bad_world: BadWorld) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("shop.products", "finance.fx_rates"):
        pq.write_table(bad_world.tables[name], data / f"{name}.parquet")
    now = "2026-01-04T00:00:00+07:00"
    result = runner.invoke(
        app, ["contracts", "check", "--all", "--source", "parquet", "--path", str(data), "--now", now]
    )
    assert result.exit_code == 1, result.stdout
    assert "not checked: shop.orders: no Parquet data" in result.stderr
    assert "weight_kg=999.0 is out of range" in result.stdout
    listed = runner.invoke(app, ["contracts", "results", "--json"])
    runs = json.loads(listed.stdout)
    assert sorted(r["dataset"] for r in runs) == ["finance.fx_rates", "shop.products"]
    assert {r["dataset"]: r["outcome"] for r in runs} == {
        "finance.fx_rates": "passed",
        "shop.products": "failed",
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["contracts", "check", "--all", "--source", "parquet"], 2, "--source parquet needs --path"),
        (
            ["contracts", "check", "--all", "--source", "events", "--now", "yesterday"],
            2,
            "--now must be an ISO timestamp",
        ),
        (["contracts", "check", "shop.orders", "--all"], 2, "name one DATASET or give --all"),
        (["contracts", "check", "--all", "--source", "lake"], 2, "unknown source 'lake'"),
        (
            ["contracts", "check", "--all", "--source", "events", "--regions", "xx"],
            2,
            "unknown region(s): xx",
        ),
        (["contracts", "results", "--run", "nope"], 3, "no quality run nope"),
    ],
)
def test_bad_arguments(runner: CliRunner, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.stdout + result.stderr
    assert message in result.stderr
