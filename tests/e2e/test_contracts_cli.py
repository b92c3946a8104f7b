"""`shopops contracts …` as a user meets it: lint, check a simulated world with bad rows, results."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import run_cli

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def test_lint_the_shipped_contracts_and_a_broken_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok = run_cli(home, "contracts", "lint")
    assert ok.returncode == 0, ok.stderr
    assert "13 contract file(s): ok" in ok.stdout

    broken = tmp_path / "orders.yaml"
    text = (CONTRACTS / "shop.orders.odcs.yaml").read_text()
    broken.write_text(text.replace("logicalType: integer", "logicalType: int", 1))
    line = text.splitlines().index("        logicalType: integer") + 1
    bad = run_cli(home, "contracts", "lint", str(broken))
    assert bad.returncode == 1
    assert f"{broken}:{line}:9: error: schema[0].properties[8].logicalType: 'int' is not one of" in bad.stderr
    assert "1 error(s)" in bad.stdout


def test_check_a_world_with_bad_rows_then_read_the_results(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sim = run_cli(
        home, "simulate", "--regions", "vn", "--days", "2", "--orders-per-day", "80",
        "--envelope", "plain", "--bad-rows", "0.03", timeout=300,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    assert "bad_negative_quantity" in sim.stdout

    check = run_cli(
        home, "contracts", "check", "shop.order_lines", "--source", "events",
        "--now", "2026-01-03T00:00:00+07:00", "--json", timeout=300,
    )  # fmt: skip
    assert check.returncode == 1, check.stderr
    (run,) = json.loads(check.stdout)
    assert run["dataset"] == "shop.order_lines"
    assert run["outcome"] == "failed"
    failed = {c["check"] for c in run["checks"] if c["outcome"] == "failed"}
    assert {"quantity.range", "unit_price_not_negative", "order_id.references"} <= failed

    listed = run_cli(home, "contracts", "results", "--failed", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == [run["run_id"]]

    detail = run_cli(home, "contracts", "results", "--run", run["run_id"])
    assert detail.returncode == 0, detail.stderr
    assert "is out of range" in detail.stdout
    assert "has no match in orders.order_id" in detail.stdout


def test_bad_arguments_exit_with_a_reason(tmp_path: Path) -> None:
    home = tmp_path / "home"
    neither = run_cli(home, "contracts", "check")
    assert neither.returncode == 2
    assert "name one DATASET or give --all" in neither.stderr
    unknown = run_cli(home, "contracts", "check", "shop.nothing", "--source", "events")
    assert unknown.returncode == 3
    assert "no data contract for dataset shop.nothing" in unknown.stderr
