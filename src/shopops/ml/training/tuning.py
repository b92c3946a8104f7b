"""Hyperparameter search: the same sampled configurations tried in-process or as Ray Tune trials.

Configurations are drawn from the use case's search space with the run's seed before anything is
fitted, so a search on Ray and one in-process try the same candidates and pick the same winner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopops.core.errors import BackendUnavailableError
from shopops.core.logging import get_logger
from shopops.ml.training.usecase import UseCase

log = get_logger(__name__)


def sample_configs(space: dict[str, list[Any]], trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` distinct draws from ``space`` (fewer if the space is smaller)."""
    rng = np.random.default_rng(seed)
    names = sorted(space)
    size = 1
    for name in names:
        size *= len(space[name])
    seen: set[tuple[int, ...]] = set()
    out: list[dict[str, Any]] = []
    while len(out) < min(trials, size):
        pick = tuple(int(rng.integers(0, len(space[name]))) for name in names)
        if pick in seen:
            continue
        seen.add(pick)
        out.append({name: space[name][i] for name, i in zip(names, pick, strict=True)})
    return out


def trial_score(
    use_case: UseCase,
    base: dict[str, Any],
    config: dict[str, Any],
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    label: str,
) -> float:
    """Fit one configuration on ``train`` and score it on ``validation`` (higher is better)."""
    boosters = use_case.fit(train, features, label, {**base, **config})
    return use_case.validation_score(use_case.predict(boosters, validation, features), validation, label)


def search_in_process(
    use_case: UseCase,
    base: dict[str, Any],
    configs: list[dict[str, Any]],
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    label: str,
    progress: Callable[[str], None] | None = None,
) -> list[float]:
    scores = []
    for i, config in enumerate(configs, 1):
        scores.append(trial_score(use_case, base, config, train, validation, features, label))
        if progress:
            progress(f"trial {i}/{len(configs)}")
    return scores


@contextmanager
def ray_session(address: str, num_cpus: int, home: Path) -> Iterator[Any]:
    """Ray, connected (``auto``, ``ray://...``) or started on this machine (``local``)."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency
        raise BackendUnavailableError("ray is not installed", hint="pip install 'ray[tune,data]'") from exc
    started = False
    if not ray.is_initialized():
        own = home / "ml" / "ray"
        # Ray puts Unix sockets under its temp dir, and a socket path may not exceed 107 bytes.
        if "RAY_TMPDIR" not in os.environ and len(str(own.resolve())) < 40:
            os.environ["RAY_TMPDIR"] = str(own.resolve())
        if "RAY_TMPDIR" in os.environ:
            Path(os.environ["RAY_TMPDIR"]).mkdir(parents=True, exist_ok=True)
        # The shopops package must be importable in the workers: a local cluster shares this
        # interpreter's environment; a remote one must have shopops installed (docs/mlops.md).
        try:
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise BackendUnavailableError(
                f"cannot reach Ray at {address}: {exc}",
                hint="start a cluster (`ray start --head`) or set ray.address to local, or unset it",
            ) from exc
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def search_on_ray(
    ray: Any,
    use_case: UseCase,
    base: dict[str, Any],
    configs: list[dict[str, Any]],
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    label: str,
    storage: Path,
    run_name: str,
) -> list[float]:
    """One Ray Tune trial per configuration; scores in the configurations' order."""
    from ray import tune

    def trainable(config: dict[str, Any], train: pd.DataFrame, validation: pd.DataFrame) -> None:
        index = int(config["index"])
        score = trial_score(use_case, base, configs[index], train, validation, features, label)
        tune.report({"score": score, "index": index})

    storage.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, train=train, validation=validation), {"cpu": 1}),
        param_space={"index": tune.grid_search(list(range(len(configs))))},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=str(storage.resolve()), name=run_name, verbose=0),
    )
    results = tuner.fit()
    scores = [float("-inf")] * len(configs)
    for i in range(len(results)):
        result = results[i]
        if result.error is not None:
            raise BackendUnavailableError(f"a Ray Tune trial failed: {result.error}")
        metrics = result.metrics or {}
        scores[int(metrics["index"])] = float(metrics["score"])
    return scores


def fit_on_ray(
    ray: Any, use_case: UseCase, train: pd.DataFrame, features: list[str], label: str, params: dict[str, Any]
) -> dict[str, str]:
    """Fit the final boosters as a Ray task; returns each booster as LightGBM model text."""

    def fit(train: pd.DataFrame) -> dict[str, str]:
        boosters = use_case.fit(train, features, label, params)
        return {name: b.model_to_string() for name, b in boosters.items()}

    task = ray.remote(num_cpus=1)(fit)
    result: dict[str, str] = ray.get(task.remote(ray.put(train)))
    return result
