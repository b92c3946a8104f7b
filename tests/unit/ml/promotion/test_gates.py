"""Each promotion gate, pure: passing, refusing, and the reason it gives."""

from __future__ import annotations

from shopops.ml.promotion.cards import REQUIRED, missing_sections, render_markdown
from shopops.ml.promotion.model import (
    PromotionRefusedError,
    beats_champion,
    card_gate,
    drift_gate,
    regions_gate,
)


def test_beats_champion() -> None:
    assert beats_champion("pr_auc", 0.5, None, higher_is_better=True, min_gain=0).passed
    assert beats_champion("pr_auc", 0.5, 0.5, higher_is_better=True, min_gain=0).passed
    worse = beats_champion("pr_auc", 0.4, 0.5, higher_is_better=True, min_gain=0)
    assert not worse.passed
    assert worse.detail == "pr_auc 0.4000 is lower than the champion's 0.5000 on the same holdout"
    mae = beats_champion("mae", 12.0, 10.0, higher_is_better=False, min_gain=0)
    assert not mae.passed
    assert "higher than the champion's" in mae.detail
    assert beats_champion("mae", 9.0, 10.0, higher_is_better=False, min_gain=0.5).passed
    assert not beats_champion("mae", 9.8, 10.0, higher_is_better=False, min_gain=0.5).passed


def test_regions_gate_names_the_region_beyond_its_margin() -> None:
    gate = regions_gate(
        "pr_auc",
        {"vn": 0.60, "sg": 0.40, "th": 0.10},
        {"vn": 0.62, "sg": 0.50, "th": 0.90},
        {"vn": 500, "sg": 500, "th": 10},
        higher_is_better=True,
        margin=0.05,
        relative=False,
        min_rows=30,
    )
    assert not gate.passed
    assert gate.detail == "worse in sg pr_auc 0.4000 against the champion's 0.5000 (margin 0.05)"
    assert gate.data["th"]["judged"] is False  # too few rows to judge alone
    relative = regions_gate(
        "mae",
        {"vn": 10.9},
        {"vn": 10.0},
        {"vn": 100},
        higher_is_better=False,
        margin=0.1,
        relative=True,
        min_rows=30,
    )
    assert relative.passed
    assert not regions_gate(
        "mae",
        {"vn": 11.1},
        {"vn": 10.0},
        {"vn": 100},
        higher_is_better=False,
        margin=0.1,
        relative=True,
        min_rows=30,
    ).passed


def test_drift_and_card_gates() -> None:
    drift = drift_gate({"a": 0.01, "b": 0.9, "c": 0.3}, 0.25, "the live inputs logged", 500)
    assert not drift.passed
    assert drift.detail.endswith(": b (PSI 0.90), c (PSI 0.30)")
    assert drift_gate({"a": 0.01}, 0.25, "x", 500).passed
    assert card_gate([]).passed
    assert card_gate(["owner"]).detail == "the model card is missing or lacks: owner"


def test_a_refusal_names_every_failed_gate() -> None:
    failed = [card_gate(["owner"]), drift_gate({"b": 0.9}, 0.25, "live", 300)]
    error = PromotionRefusedError("fraud", 3, failed)
    assert error.http_status == 409
    assert error.message.startswith("fraud v3 was not promoted: gate 'model_card' failed")
    assert "gate 'drift' failed" in error.message
    assert [g["gate"] for g in error.details["gates"]] == ["model_card", "drift"]


def test_cards() -> None:
    assert missing_sections(None) == list(REQUIRED)
    card = {
        "model": "eta",
        "version": 2,
        "run_id": "abc",
        "owner": "ml-platform",
        "intended_use": "predict deliveries",
        "limitations": "simulated",
        "data": {
            "source": "features",
            "data_versions": {"vn.shop.orders": 7},
            "features": ["f"],
            "label": "y",
            "rows": {"train": 1},
            "holdout": "10 rows",
        },
        "metrics": {"mae": 1.5},
        "truth": {"metric": "mae_ratio", "value": 1.01, "bound": 1.15, "ok": True},
        "per_region": {"vn": {"mae": 1.5}},
        "shap": [{"feature": "f", "mean_abs": 0.2, "mean": 0.1}],
    }
    assert missing_sections(card) == []
    assert missing_sections({**card, "owner": ""}) == ["owner"]
    text = render_markdown(card)
    for heading in (
        "# Model card: eta v2",
        "## Intended use",
        "## Data",
        "## Metrics per region",
        "## Limitations",
    ):
        assert heading in text
    assert "| vn | 1.5 |" in text
