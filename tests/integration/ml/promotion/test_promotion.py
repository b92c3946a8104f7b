"""Promotion: each gate refusing with its reason, the policy refusing, the alias moved and audited,
rollback."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from tests.integration.ml.promotion.conftest import Bench

from shopops.governance.errors import PermissionDeniedError
from shopops.governance.model import Principal, make_principal
from shopops.ml.promotion.model import PromotionRefusedError
from shopops.ml.serving.predlog import Prediction, append_many
from shopops.ml.tracking.service import CHAMPION


def _promotions(bench: Bench) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.action, r.decision, tuple(r.reasons)) for r in bench.audit() if r.kind == "promotion"]


def test_first_champion_moves_the_alias_and_is_audited(bench: Bench, mia: Principal) -> None:
    report = bench.training.train("fraud", seed=1)
    promoted = bench.promotion().promote("fraud", report.version, mia, ["lead"])
    assert bench.tracking.alias_version("fraud", CHAMPION) == report.version
    assert {g.name for g in promoted.gates if g.passed} == {
        "beats_champion",
        "regions",
        "drift",
        "model_card",
    }
    assert promoted.previous is None
    assert promoted.decision == ["ml-engineers-promote-the-champion-with-an-approval"]
    assert _promotions(bench) == [
        ("promote", "allow", ("ml-engineers-promote-the-champion-with-an-approval",)),
        ("move_alias", "done", ("promote",)),
    ]
    moved = next(r for r in bench.audit() if r.action == "move_alias")
    assert moved.details["to"] == report.version
    assert moved.details["from"] is None
    assert moved.principal == 'User::"mia"'
    assert bench.governance.verify_audit().ok
    # The champion's card is linked in the catalog.
    assert bench.links == [("fraud", report.version, f"runs:/{report.run_id}/card/model_card.md")]
    card = bench.promotion().card("fraud")
    assert isinstance(card, str)
    assert "## Intended use" in card
    assert "## Metrics per region" in card


def test_policy_refuses_without_an_approver_and_self_approval(bench: Bench, mia: Principal) -> None:
    report = bench.training.train("fraud", seed=1)
    promotion = bench.promotion()
    with pytest.raises(PermissionDeniedError, match="may not promote"):
        promotion.promote("fraud", report.version, mia, [])
    with pytest.raises(PermissionDeniedError, match="no-self-approval"):
        promotion.promote("fraud", report.version, mia, ["mia"])
    support = make_principal("user", "sam", ["support"], "vn")
    with pytest.raises(PermissionDeniedError):
        promotion.promote("fraud", report.version, support, ["lead"])
    assert bench.tracking.alias_version("fraud", CHAMPION) is None
    assert [d for _, d, _ in _promotions(bench)] == ["deny", "deny", "deny"]


def test_a_candidate_that_does_not_beat_the_champion_is_refused(bench: Bench, mia: Principal) -> None:
    first = bench.training.train("eta", seed=1)
    second = bench.training.train("eta", seed=1)
    bench.promotion().promote("eta", first.version, mia, ["lead"])
    with pytest.raises(PromotionRefusedError) as refused:
        bench.promotion(min_gain=1.0).promote("eta", second.version, mia, ["lead"])
    assert [g.name for g in refused.value.failed] == ["beats_champion"]
    assert "gate 'beats_champion' failed: mae" in refused.value.message
    assert "a gain of at least 1.0 is required" in refused.value.message
    assert bench.tracking.alias_version("eta", CHAMPION) == first.version
    assert _promotions(bench)[-1] == ("promote", "deny", ("gate:beats_champion",))


def test_a_region_worse_beyond_the_margin_is_refused_by_name(bench: Bench, mia: Principal) -> None:
    default = bench.training.train("fraud", seed=1)
    tuned = bench.training.train("fraud", seed=1, tune=True)
    strict = bench.promotion(region_margin_pr_auc=0.0)
    bench.promotion().promote("fraud", default.version, mia, ["lead"])
    gates, _ = strict.gates("fraud", tuned.version)
    regions = next(g for g in gates if g.name == "regions")
    if regions.passed:  # the tuned model is better everywhere: the default one is then the worse one
        bench.promotion(min_gain=0.0).promote("fraud", tuned.version, mia, ["lead"])
        candidate = default.version
    else:
        candidate = tuned.version
    with pytest.raises(PromotionRefusedError) as refused:
        strict.promote("fraud", candidate, mia, ["lead"])
    failed = {g.name: g for g in refused.value.failed}
    assert "regions" in failed
    assert any(f"{r} pr_auc" in failed["regions"].detail for r in ("vn", "sg", "th"))
    assert "gate 'regions' failed: worse in" in refused.value.message


def test_drifted_live_inputs_refuse_the_candidate(bench: Bench, mia: Principal) -> None:
    report = bench.training.train("eta", seed=1)
    rng = np.random.default_rng(0)
    shifted = [
        Prediction(
            ts_ms=int(time.time() * 1000),
            request_id=f"r{i}",
            use_case="eta",
            model="eta",
            version=report.version,
            entity={},
            features={f: float(rng.normal(1000, 10)) for f in report.features},
            defaults=[],
            output={},
            latency_us=1,
        )
        for i in range(300)
    ]
    append_many(bench.home / "ml" / "predictions.db", shifted)
    with pytest.raises(PromotionRefusedError) as refused:
        bench.promotion().promote("eta", report.version, mia, ["lead"])
    assert [g.name for g in refused.value.failed] == ["drift"]
    assert "inputs drifted beyond PSI 0.25 against the live inputs logged" in refused.value.message
    assert "weight_kg (PSI" in refused.value.message


def test_a_version_without_a_model_card_is_refused(bench: Bench, mia: Principal) -> None:
    report = bench.training.train("eta", seed=1)
    run = bench.tracking.run_info(report.run_id)
    card = Path(run.info.artifact_uri.removeprefix("file://")) / "card" / "model_card.json"
    card.unlink()
    with pytest.raises(PromotionRefusedError) as refused:
        bench.promotion().promote("eta", report.version, mia, ["lead"])
    assert [g.name for g in refused.value.failed] == ["model_card"]
    assert "the model card is missing" in refused.value.message


def test_rollback_restores_the_previous_champion(bench: Bench, mia: Principal) -> None:
    first = bench.training.train("eta", seed=1)
    second = bench.training.train("eta", seed=1)
    promotion = bench.promotion()
    promotion.promote("eta", first.version, mia, ["lead"])
    promotion.promote("eta", second.version, mia, ["lead"])
    assert bench.tracking.champion_history("eta") == [first.version, second.version]
    back = promotion.rollback("eta", mia, ["lead"])
    assert (back.version, back.previous) == (first.version, second.version)
    assert bench.tracking.alias_version("eta", CHAMPION) == first.version
    assert bench.tracking.champion_history("eta") == [first.version]
    assert _promotions(bench)[-1] == ("move_alias", "done", ("rollback",))
    with pytest.raises(Exception, match="no earlier champion"):
        promotion.rollback("eta", mia, ["lead"])
    listed = {m["name"]: m for m in promotion.list_models()}
    assert listed["eta"]["champion"] == first.version


def test_the_champions_card_is_linked_in_the_catalog(bench: Bench, mia: Principal) -> None:
    from shopops.bootstrap import build_catalog, build_promotion
    from shopops.core.settings import Settings

    settings = Settings(home=bench.home)
    catalog = build_catalog(settings)
    try:
        report = bench.training.train("eta", seed=1)
        build_promotion(settings, bench.governance, catalog).promote("eta", report.version, mia, ["lead"])
        dataset = catalog.dataset("models.eta")
        assert dataset.kind.value == "model"
        assert dataset.links["model_card"] == f"runs:/{report.run_id}/card/model_card.md"
        assert dataset.links["champion"] == f"models:/eta/{report.version}"
    finally:
        catalog.close()
