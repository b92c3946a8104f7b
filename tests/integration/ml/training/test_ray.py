"""On a local Ray cluster: the hyperparameter search and the final fit (the same choice as
in-process), and batch scoring of a table with Ray Data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from tests.integration.ml.training.worlds import EventsWorld, fresh_home

from shopops.ml.serving.batch import score_table
from shopops.ml.serving.loader import load_model
from shopops.ml.tracking.service import Tracking, default_uris
from shopops.ml.training.service import TrainingService
from shopops.ml.training.tuning import ray_session


def test_tune_fit_and_batch_scoring_on_ray(
    world: EventsWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray's socket paths must stay under 107 bytes: a short folder of its own, not under tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    fresh_home(world.mlflow_template, tmp_path)
    uri, artifacts = default_uris(tmp_path, None, None)
    tracking = Tracking(uri, artifacts)
    try:
        # One Ray instance for the whole test: the training service joins it instead of starting one.
        with ray_session("local", 2, tmp_path) as ray:
            on_ray = TrainingService(
                tracking,
                world.frames,
                home=tmp_path,
                tune_trials=2,
                ray_address="local",
                source_name="events",
            ).train("eta", seed=5, tune=True)
            assert ray.is_initialized()
            model = load_model(tracking, "eta", on_ray.version, tmp_path / "cache")
            table = tmp_path / "shipments.parquet"
            pd.read_parquet(model.holdout_path()).to_parquet(table)
            batch = score_table(model, table, tmp_path / "scored", ray=ray)
        local = TrainingService(
            tracking, world.frames, home=tmp_path, tune_trials=2, source_name="events"
        ).train("eta", seed=5, tune=True)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert on_ray.backend == "ray"
    assert local.backend == "in-process"
    assert on_ray.tuned is not None
    assert local.tuned is not None
    assert on_ray.tuned["scores"] == local.tuned["scores"]
    assert on_ray.params == local.params
    assert on_ray.metrics == local.metrics
    assert (tmp_path / "ml" / "ray_results").is_dir()
    assert batch.backend == "ray"
    scored = pd.read_parquet(tmp_path / "scored")
    assert batch.rows == len(scored) == on_ray.rows["holdout"]
    assert (scored["p50_hours"] <= scored["p90_hours"]).all()
