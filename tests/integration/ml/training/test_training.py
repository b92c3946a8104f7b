"""Training on a simulated world: scored against its truth, reproducible, everything logged in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.ml.training.worlds import EventsWorld, fresh_home

from shopops.ml.serving.loader import load_model
from shopops.ml.tracking.service import Tracking, default_uris
from shopops.ml.training.service import TrainingService


def _service(world: EventsWorld, home: Path, **options: object) -> TrainingService:
    fresh_home(world.mlflow_template, home)
    uri, artifacts = default_uris(home, None, None)
    return TrainingService(Tracking(uri, artifacts), world.frames, home=home, source_name="events", **options)  # type: ignore[arg-type]


def test_both_models_meet_their_truth_ratios_and_report_them(world: EventsWorld, tmp_path: Path) -> None:
    service = _service(world, tmp_path)
    fraud = service.train("fraud", seed=7)
    eta = service.train("eta", seed=7)
    print(
        f"fraud PR-AUC {fraud.metrics['pr_auc']:.4f} / truth {fraud.metrics['truth_pr_auc']:.4f} "
        f"= {fraud.truth_ratio:.3f}"
    )
    print(
        f"ETA MAE {eta.metrics['mae']:.2f} h / truth {eta.metrics['truth_mae']:.2f} h = {eta.truth_ratio:.3f}"
    )
    assert fraud.truth_metric == "pr_auc_ratio"
    assert fraud.truth_ratio >= 0.9
    assert fraud.truth_ok
    assert eta.truth_metric == "mae_ratio"
    assert eta.truth_ratio <= 1.15
    assert eta.truth_ok
    assert 0.8 <= eta.metrics["p90_coverage"] <= 0.98
    # Both ratios are logged with the run, with everything needed to reproduce it.
    run = service.tracking.run_info(fraud.run_id)
    assert run.data.metrics["pr_auc_ratio"] == pytest.approx(fraud.truth_ratio)
    assert service.tracking.run_info(eta.run_id).data.metrics["mae_ratio"] == pytest.approx(eta.truth_ratio)
    assert run.data.params["features"].split(",") == fraud.features
    assert run.data.params["seed"] == "7"
    assert {k for k in run.data.tags if k.startswith("data_version.")} == {
        f"data_version.{r}.shop.{t}" for r in ("vn", "sg", "th") for t in ("orders", "customers")
    }
    assert any(k.startswith("shap.") for k in run.data.metrics)
    for region in ("vn", "sg", "th"):
        assert f"{region}.pr_auc" in run.data.metrics
    # The registered version loads as native boosters whose signature matches the features.
    model = load_model(
        service.tracking, "fraud", fraud.version, tmp_path / "cache", expected_features=fraud.features
    )
    assert model.features == fraud.features
    assert model.version == fraud.version == 1
    card = service.tracking.read_json(fraud.run_id, "card/model_card.json")
    assert card["owner"]
    assert card["per_region"].keys() == {"vn", "sg", "th"}
    assert card["shap"]


def test_same_seed_same_metrics(world: EventsWorld, tmp_path: Path) -> None:
    service = _service(world, tmp_path)
    first = service.train("fraud", seed=3)
    second = service.train("fraud", seed=3)
    assert second.version == first.version + 1
    assert first.metrics == second.metrics
    assert first.per_region == second.per_region
    assert first.shap == second.shap
    assert service.tracking.run_info(second.run_id).data.params["seed"] == "3"


def test_in_process_search_picks_among_sampled_configurations(world: EventsWorld, tmp_path: Path) -> None:
    service = _service(world, tmp_path, tune_trials=3)
    report = service.train("eta", seed=1, tune=True)
    assert report.tuned is not None
    assert report.tuned["trials"] == 3
    assert len(report.tuned["scores"]) == 3
    assert report.backend == "in-process"
    assert report.truth_ok


def test_too_little_data_is_refused_with_what_to_do(world: EventsWorld, tmp_path: Path) -> None:
    from shopops.core.errors import InvalidInputError

    class Tiny:
        def feature_names(self, use_case: str) -> list[str]:
            return list(world.frames.feature_names(use_case))

        def training_frame(self, use_case: str, *, regions: list[str] | None = None):  # type: ignore[no-untyped-def]
            tf = world.frames.training_frame(use_case)
            tf.frame = tf.frame.head(50)
            return tf

    service = _service(world, tmp_path)
    service.frames = Tiny()
    with pytest.raises(InvalidInputError, match="only 50 labelled rows"):
        service.train("fraud")
