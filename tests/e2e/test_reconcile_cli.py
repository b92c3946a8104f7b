"""`shopops reconcile` end to end: simulate, reconcile, score, read, export; bad input exits non-zero."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.e2e.helpers import run_cli


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("recon") / "data"
    done = run_cli(home, "simulate", "--days", "3", "--orders-per-day", "80", "--seed", "9")
    assert done.returncode == 0, done.stderr
    return home


def test_reconcile_score_and_read(home: Path, tmp_path: Path) -> None:
    done = run_cli(home, "reconcile", "--from", "2026-01-01", "--to", "2026-01-03", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["regions"] == ["vn", "sg", "th"]
    assert report["exceptions"] > 0
    assert report["partitions"] == 9

    table = run_cli(home, "reconcile", "--from", "2026-01-01", "--to", "2026-01-03", "--no-build")
    assert table.returncode == 0, table.stderr
    assert "matched orders" in table.stdout
    assert "missing payment" in table.stdout

    scored = run_cli(home, "reconcile", "score", "--from", "2026-01-01", "--to", "2026-01-03", "--json")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["recall"] == 1.0
    assert result["precision"] == 1.0

    listed = run_cli(home, "reconcile", "exceptions", "--class", "ledger_break,missing_payment", "--json")
    rows = json.loads(listed.stdout)
    assert rows
    assert {r["class"] for r in rows} <= {"ledger_break", "missing_payment"}
    assert all(r["explanation"] for r in rows)

    for fmt in ("csv", "parquet"):
        out = tmp_path / f"exceptions.{fmt}"
        done = run_cli(home, "reconcile", "export", "--format", fmt, "--out", str(out))
        assert done.returncode == 0, done.stderr
        count = len(list(csv.DictReader(out.open()))) if fmt == "csv" else pq.read_table(out).num_rows
        assert count == report["exceptions"]

    for command in (["summary"], ["runs"], ["ageing"], ["classes"], ["rules"]):
        done = run_cli(home, "reconcile", *command)
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--from", "2026-01-05", "--to", "2026-01-01", "--no-build"], 2, "empty window"),
        (["--from", "yesterday", "--to", "2026-01-01"], 2, "is not a date"),
        (["--from", "2026-01-01", "--to", "2026-01-02", "--regions", "vn,xx"], 2, "unknown region"),
        (["--from", "2026-01-01"], 2, "give the window"),
        (["exceptions", "--class", "oops"], 2, "unknown exception class"),
        (["export", "--format", "xlsx", "--out", "x.xlsx"], 2, "choose csv or parquet"),
        (["--from", "2026-01-01", "--to", "2026-01-02", "--regions", "my"], 3, "topic my.shop.orders"),
    ],
)
def test_bad_input_exits_with_a_message(home: Path, args: list[str], code: int, message: str) -> None:
    done = run_cli(home, "reconcile", *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr


def test_a_malformed_rules_directory_is_refused(home: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for code in ("vn", "sg", "th"):
        (rules / f"{code}.yaml").write_text(f"region: {code}\nversion: 1\ncurrency: [\n")
    done = run_cli(
        home,
        "reconcile",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--no-build",
        SHOPOPS_RECONCILIATION__RULES_DIR=str(rules),
    )
    assert done.returncode == 2
    assert "vn.yaml:4:1: not valid YAML" in done.stderr
    bad = run_cli(home, "reconcile", "rules", str(rules / "sg.yaml"))
    assert bad.returncode == 2
    assert "sg.yaml" in bad.stderr
