"""`shopops train` and `shopops models` end to end: train, list, promote through the policy, card,
roll back, batch-score; bad input exits non-zero with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.e2e.helpers import run_cli

# Frames straight from the event log: the CLI path without a lake and a feature store to build.
EVENTS = {"SHOPOPS_ML__TRAINING__SOURCE": "events"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("models") / "data"
    done = run_cli(
        home, "simulate", "--regions", "vn,sg", "--days", "4", "--orders-per-day", "80", "--seed", "3"
    )
    assert done.returncode == 0, done.stderr
    return home


def _json(stdout: str) -> object:
    return json.loads(stdout[min(i for i in (stdout.find("{"), stdout.find("[")) if i >= 0) :])


def test_train_promote_card_rollback(home: Path, tmp_path: Path) -> None:
    first = run_cli(home, "train", "eta", "--seed", "1", "--json", **EVENTS)
    assert first.returncode == 0, first.stderr
    report = _json(first.stdout)
    assert isinstance(report, dict)
    assert report["version"] == 1
    assert report["truth"]["metric"] == "mae_ratio"
    assert report["truth"]["ratio"] > 0
    table = run_cli(home, "train", "eta", "--seed", "1", **EVENTS)
    assert table.returncode == 0, table.stderr
    assert "against the simulator's truth: mae_ratio" in table.stdout
    assert "eta v2" in table.stdout

    key = run_cli(
        home, "auth", "create-key", "--name", "mia", "--role", "ml_engineer", "--region", "vn", "--json"
    )
    assert key.returncode == 0, key.stderr
    token = _json(key.stdout)["key"]  # type: ignore[index]

    no_key = run_cli(home, "models", "promote", "eta", "1", "--approver", "lead")
    assert no_key.returncode == 2
    assert "promoting needs the promoter's API key" in no_key.stderr
    promoted = run_cli(home, "models", "promote", "eta", "1", "--approver", "lead", SHOPOPS_API_KEY=token)
    assert promoted.returncode == 0, promoted.stderr
    assert "eta champion → v1" in promoted.stdout
    again = run_cli(home, "models", "promote", "eta", "2", "--approver", "lead", SHOPOPS_API_KEY=token)
    assert again.returncode == 0, again.stderr

    listed = _json(run_cli(home, "models", "list", "--json").stdout)
    assert isinstance(listed, list)
    eta = next(m for m in listed if m["name"] == "eta")
    assert eta["champion"] == 2
    assert [v["version"] for v in eta["versions"]] == [2, 1]

    card = run_cli(home, "models", "card", "eta")
    assert card.returncode == 0
    assert "Intended use" in card.stdout
    assert "Limitations" in card.stdout

    back = run_cli(home, "models", "rollback", "eta", "--approver", "lead", SHOPOPS_API_KEY=token)
    assert back.returncode == 0, back.stderr
    assert "eta champion → v1" in back.stdout

    holdout = next((home / "ml" / "cache").glob("*/shopops/holdout.parquet"))
    out = tmp_path / "scored.parquet"
    scored = run_cli(home, "models", "score", "eta", "--input", str(holdout), "--output", str(out))
    assert scored.returncode == 0, scored.stderr
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(holdout))


def test_bad_input_exits_with_the_reason(home: Path) -> None:
    unknown = run_cli(home, "train", "churn", **EVENTS)
    assert unknown.returncode == 2
    assert "unknown use case 'churn'" in unknown.stderr
    missing = run_cli(home, "models", "card", "nosuchmodel")
    assert missing.returncode == 3
    assert "no registered model 'nosuchmodel'" in missing.stderr
    no_version = run_cli(
        home,
        "models",
        "promote",
        "eta",
        "99",
        "--approver",
        "x",
        SHOPOPS_API_KEY="sk_000000000000_" + "x" * 30,
    )
    assert no_version.returncode != 0


def test_the_demo_trains_promotes_and_serves_both_models(tmp_path: Path, start_server) -> None:  # type: ignore[no-untyped-def]
    import time

    server = start_server(
        tmp_path / "demo",
        SHOPOPS_SIMULATOR__REGIONS='["vn","sg"]',
        SHOPOPS_SIMULATOR__DAYS="4",
        SHOPOPS_SIMULATOR__ORDERS_PER_DAY="80",
        SHOPOPS_RAG__INGEST_ON_START="false",
    )
    server.wait_healthy(timeout=300)
    with server.client() as client:
        deadline = time.monotonic() + 300
        status: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            status = client.get("/v1/score/status").json()
            if all(status.get(m, {}).get("version") for m in ("fraud", "eta")):
                break
            time.sleep(1)
        assert status["fraud"]["version"] == 1, server.output()[-3000:]
        assert status["eta"]["version"] == 1
        order = pd.read_parquet(tmp_path / "demo" / "truth" / "fraud_truth.parquet").iloc[-1]
        scored = client.post(
            "/v1/score/fraud",
            json={
                "customer_id": order.customer_id,
                "device_id": order.device_id,
                "card_fingerprint": order.card_fingerprint,
            },
        )
        assert scored.status_code == 200, scored.text
        assert 0 <= scored.json()["score"] <= 1
        ship = pd.read_parquet(tmp_path / "demo" / "truth" / "delivery_truth.parquet").iloc[-1]
        eta = client.post("/v1/predict/eta", json={"carrier": ship.carrier, "route": ship.route})
        assert eta.status_code == 200, eta.text
        # Promoted through the policy, by the demo's service account, with the demo approver.
        records = client.get("/v1/audit/records", params={"limit": 10000}).json()
    promotions = [r for r in records if r["kind"] == "promotion"]
    assert {(r["action"], r["decision"], r["resource"]) for r in promotions} == {
        ("promote", "allow", 'Model::"fraud"'),
        ("move_alias", "done", 'Model::"fraud"'),
        ("promote", "allow", 'Model::"eta"'),
        ("move_alias", "done", 'Model::"eta"'),
    }
    assert all(r["principal"] == 'ServiceAccount::"shopops-demo"' for r in promotions)
