"""`shopops catalog` end to end: simulate, reconcile (lineage recorded), sync, list, show, draw
lineage, list runs, flush; bad input exits non-zero with what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.helpers import run_cli

CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
name: Orders
domain: shop
team: {name: checkout}
schema:
  - name: orders
    physicalName: shop.orders
    properties:
      - {name: ip, logicalType: string, tags: [pii]}
slaProperties:
  - {property: latency, value: 15, unit: min}
  - {property: retention, value: 10, unit: y}
"""


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli(home, *args, SHOPOPS_CATALOG__CONTRACTS_DIR=str(home.parent / "contracts"))
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("catalog-cli") / "data"
    contracts = home.parent / "contracts"
    contracts.mkdir()
    (contracts / "shop.orders.odcs.yaml").write_text(CONTRACT)
    code, _, err = _cli(home, "simulate", "--regions", "vn,sg", "--days", "1", "--orders-per-day", "20")
    assert code == 0, err
    code, _, err = _cli(home, "reconcile", "--from", "2026-01-01", "--to", "2026-01-01", "--regions", "vn,sg")
    assert code == 0, err
    return home


def test_sync_list_show_lineage_runs(home: Path) -> None:
    code, out, err = _cli(home, "catalog", "sync", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"]["topics"] == 26
    assert report["problems"] == []
    assert report["openlineage"]["pending"] == 0

    code, out, _ = _cli(home, "catalog", "list", "--kind", "topic", "--json")
    assert code == 0
    topics = {d["name"]: d for d in json.loads(out)}
    assert len(topics) == 26
    assert topics["vn.shop.orders"]["owner"] == "checkout"
    assert "ip" in topics["vn.shop.orders"]["personal_columns"]
    assert topics["vn.payments.payments"]["owner"] == "data-platform"

    code, out, _ = _cli(home, "catalog", "show", "vn.shop.orders")
    assert code == 0
    for text in (
        "checkout",
        "latency 15min",
        "10y",
        "contracts/shop.orders.odcs.yaml",
        "reconciliation.export",
        "card_fingerprint",
        "secret",
    ):
        assert text in out, text

    code, out, err = _cli(home, "catalog", "lineage", "vn.shop.orders", "--downstream", "--depth", "2")
    assert code == 0, err
    assert "downstream: vn.shop.orders" in out
    assert "upstream:" not in out
    for text in (
        "job reconciliation.export",
        "job reconciliation.run",
        "reconciliation.input.vn.orders",
        "└──",
    ):
        assert text in out, text
    assert "reconciliation.input.sg.orders" not in out

    code, out, _ = _cli(home, "catalog", "runs", "--job", "reconciliation.export", "--json")
    runs = json.loads(out)
    assert sorted(r["facets"]["region"] for r in runs) == ["sg", "vn"]
    code, out, _ = _cli(home, "catalog", "flush")
    assert code == 0
    assert "0 still queued" in out
    events = (home / "catalog" / "openlineage").glob("lineage-*.ndjson")
    assert sum(len(f.read_text().splitlines()) for f in events) == 6  # 3 runs: START + COMPLETE each


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "vn.shop.order"], 3, "did you mean vn.shop.orders"),
        (["lineage", "vn.shop.orders", "--depth", "0"], 2, "depth 0 is out of range"),
        (["list", "--kind", "view"], 2, "unknown dataset kind 'view'"),
    ],
)
def test_bad_input_exits_non_zero_with_the_reason(
    home: Path, args: list[str], code: int, message: str
) -> None:
    got, out, err = _cli(home, "catalog", *args)
    assert got == code, out + err
    assert message in " ".join((out + err).split())
