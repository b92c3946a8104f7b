"""Hyperparameter search and the final fit on a local Ray cluster: the same choice as in-process."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.integration.ml.training.worlds import EventsWorld, fresh_home

from shopops.ml.tracking.service import Tracking, default_uris
from shopops.ml.training.service import TrainingService


def test_tune_on_ray_matches_the_in_process_search(world: EventsWorld, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Ray's socket paths must stay under 107 bytes: a short folder of its own, not under tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    try:
        _compare(world, tmp_path)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _compare(world: EventsWorld, tmp_path: Path) -> None:
    fresh_home(world.mlflow_template, tmp_path)
    uri, artifacts = default_uris(tmp_path, None, None)
    tracking = Tracking(uri, artifacts)
    on_ray = TrainingService(
        tracking,
        world.frames,
        home=tmp_path,
        tune_trials=2,
        ray_address="local",
        ray_cpus=2,
        source_name="events",
    ).train("eta", seed=5, tune=True)
    local = TrainingService(tracking, world.frames, home=tmp_path, tune_trials=2, source_name="events").train(
        "eta", seed=5, tune=True
    )
    assert on_ray.backend == "ray"
    assert local.backend == "in-process"
    assert on_ray.tuned is not None
    assert local.tuned is not None
    assert on_ray.tuned["scores"] == local.tuned["scores"]
    assert on_ray.params == local.params
    assert on_ray.metrics == local.metrics
    assert (tmp_path / "ml" / "ray_results").is_dir()
