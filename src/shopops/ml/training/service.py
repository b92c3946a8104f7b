"""The training pipeline shared by every use case.

frame (feature store or event log) → time split → (search) → fit → score on the holdout, against
the simulator's truth too → SHAP summary → MLflow run (parameters, metrics, data versions, feature
list, signature, boosters, holdout) → registered version → model card.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from shopops.core.errors import InvalidInputError
from shopops.core.logging import get_logger
from shopops.ml.promotion.cards import CARD_DIR, CARD_JSON, CARD_MD, build_card, render_markdown
from shopops.ml.tracking.service import ModelVersionInfo, Tracking
from shopops.ml.training.frames import FrameSource
from shopops.ml.training.model import Evaluation, profile, shap_summary, time_split
from shopops.ml.training.tuning import (
    fit_on_ray,
    ray_session,
    sample_configs,
    search_in_process,
    search_on_ray,
)
from shopops.ml.training.usecase import UseCase, get_use_case

log = get_logger(__name__)

#: Run artifacts the platform reads back (serving, promotion), beside MLflow's own ``model/``.
META_DIR = "shopops"
METADATA = "metadata.json"
HOLDOUT = "holdout.parquet"
MODEL_DIR = "model"
#: Fewer rows than this (or positives, for a classifier) cannot be trained on meaningfully.
MIN_ROWS = 100
MIN_POSITIVES = 5


@dataclass
class TrainReport:
    """What one training run produced."""

    use_case: str
    model: str
    version: int
    run_id: str
    seed: int
    params: dict[str, Any]
    metrics: dict[str, float]
    per_region: dict[str, dict[str, float]]
    truth_metric: str
    truth_ratio: float
    truth_bound: float
    truth_ok: bool
    features: list[str]
    data_versions: dict[str, int]
    rows: dict[str, int]
    tuned: dict[str, Any] | None
    backend: str
    seconds: float
    shap: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "seed": self.seed,
            "params": self.params,
            "metrics": self.metrics,
            "per_region": self.per_region,
            "truth": {
                "metric": self.truth_metric,
                "ratio": self.truth_ratio,
                "bound": self.truth_bound,
                "ok": self.truth_ok,
            },
            "features": self.features,
            "data_versions": self.data_versions,
            "rows": self.rows,
            "tuned": self.tuned,
            "backend": self.backend,
            "seconds": round(self.seconds, 3),
            "shap": self.shap[:10],
        }


def truth_ok(use_case: UseCase, value: float) -> bool:
    """Whether the truth ratio meets its bound (a floor for PR-AUC, a ceiling for MAE)."""
    if math.isnan(value):
        return False
    return (
        value >= use_case.truth_ratio_bound
        if use_case.higher_is_better
        else value <= use_case.truth_ratio_bound
    )


class TrainingService:
    """Trains a use case's model from a frame source and registers it in MLflow."""

    def __init__(
        self,
        tracking: Tracking,
        frames: FrameSource,
        *,
        home: Path,
        holdout_fraction: float = 0.3,
        num_threads: int = 2,
        tune_trials: int = 8,
        owner: str = "ml-platform",
        ray_address: str | None = None,
        ray_cpus: int = 2,
        source_name: str = "features",
    ) -> None:
        self.tracking = tracking
        self.frames = frames
        self.home = home
        self.holdout_fraction = holdout_fraction
        self.num_threads = num_threads
        self.tune_trials = tune_trials
        self.owner = owner
        self.ray_address = ray_address
        self.ray_cpus = ray_cpus
        self.source_name = source_name

    def train(
        self,
        use_case: str,
        *,
        seed: int = 42,
        tune: bool = False,
        regions: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TrainReport:
        """Train, score, log and register one model; the same seed and data give the same metrics."""
        started = time.perf_counter()
        say = progress or (lambda _: None)
        uc = get_use_case(use_case)
        say("building the training frame")
        tf = self.frames.training_frame(use_case, regions=regions)
        features = list(tf.features)
        frame = tf.frame.dropna(subset=[tf.label]).reset_index(drop=True)
        self._check(uc, frame, tf.label)
        split = time_split(frame, self.holdout_fraction)
        base = {**uc.default_params(), "seed": seed, "num_threads": self.num_threads}
        backend = "ray" if self.ray_address else "in-process"
        tuned: dict[str, Any] | None = None
        with self._maybe_ray() as ray:
            params = base
            if tune:
                configs = sample_configs(uc.search_space(), self.tune_trials, seed)
                say(f"searching {len(configs)} configurations ({backend})")
                if ray is not None:
                    scores = search_on_ray(
                        ray,
                        uc,
                        base,
                        configs,
                        split.train,
                        split.validation,
                        features,
                        tf.label,
                        self.home / "ml" / "ray_results",
                        f"{use_case}-{seed}-{int(time.time())}",
                    )
                else:
                    scores = search_in_process(
                        uc, base, configs, split.train, split.validation, features, tf.label, say
                    )
                best = int(np.argmax(scores))  # the first of equal scores: deterministic
                params = {**base, **configs[best]}
                tuned = {
                    "trials": len(configs),
                    "best_trial": best,
                    "best_score": scores[best],
                    "scores": scores,
                }
            # The final model learns from everything before the holdout (validation served the search).
            fitted = pd.concat([split.train, split.validation], ignore_index=True)
            say(f"fitting ({backend})")
            if ray is not None:
                import lightgbm as lgb

                texts = fit_on_ray(ray, uc, fitted, features, tf.label, params)
                boosters = {name: lgb.Booster(model_str=text) for name, text in texts.items()}
            else:
                boosters = uc.fit(fitted, features, tf.label, params)
        say("scoring on the holdout")
        evaluation = uc.evaluation(boosters, split.holdout, features, tf.label, tf.truth)
        first = boosters[uc.outputs[0]]
        contrib = first.predict(split.holdout[features].to_numpy(dtype=float), pred_contrib=True)
        shap = shap_summary(np.asarray(contrib), features)
        ratio = evaluation.metrics.get(uc.truth_ratio_metric, float("nan"))
        reference = profile(fitted, features)
        metadata = {
            "use_case": use_case,
            "model": uc.name,
            "features": features,
            "outputs": list(uc.outputs),
            "label": tf.label,
            "truth": tf.truth,
            "defaults": {name: reference[name]["median"] for name in features},
            "reference": reference,
            "params": params,
            "seed": seed,
            "tuned": tuned,
            "backend": backend,
            "source": self.source_name,
            "data_versions": {k: int(v) for k, v in tf.data_versions.items()},
            "rows": {
                "train": len(split.train),
                "validation": len(split.validation),
                "holdout": len(split.holdout),
            },
            "holdout": _window(split.holdout),
            "evaluation": evaluation.to_dict(),
            "truth_check": {
                "metric": uc.truth_ratio_metric,
                "value": ratio,
                "bound": uc.truth_ratio_bound,
                "ok": truth_ok(uc, ratio),
            },
            "shap": shap,
            "trained_at": datetime.now(tz=UTC).isoformat(),
        }
        say("logging to MLflow")
        version = self._log(uc, boosters, split.holdout, tf, metadata, evaluation)
        report = TrainReport(
            use_case=use_case,
            model=uc.name,
            version=version.version,
            run_id=version.run_id,
            seed=seed,
            params=params,
            metrics=evaluation.metrics,
            per_region=evaluation.per_region,
            truth_metric=uc.truth_ratio_metric,
            truth_ratio=ratio,
            truth_bound=uc.truth_ratio_bound,
            truth_ok=truth_ok(uc, ratio),
            features=features,
            data_versions=metadata["data_versions"],
            rows=metadata["rows"],
            tuned=tuned,
            backend=backend,
            seconds=time.perf_counter() - started,
            shap=shap,
        )
        log.info(
            "model trained",
            model=uc.name,
            version=report.version,
            **{k: round(v, 4) for k, v in evaluation.metrics.items() if not math.isnan(v)},
        )
        return report

    # --- steps ----------------------------------------------------------------------------------

    def _check(self, uc: UseCase, frame: pd.DataFrame, label: str) -> None:
        if len(frame) < MIN_ROWS:
            raise InvalidInputError(
                f"only {len(frame)} labelled rows to train {uc.name} on (at least {MIN_ROWS} needed)",
                hint="simulate more days or orders (`shopops simulate --days 14`), or include more regions",
            )
        if uc.name == "fraud" and int(frame[label].sum()) < MIN_POSITIVES:
            raise InvalidInputError(
                f"only {int(frame[label].sum())} fraudulent orders to learn from (at least {MIN_POSITIVES})",
                hint="simulate a longer window or raise the fraud-ring rate",
            )

    def _maybe_ray(self) -> Any:
        if self.ray_address:
            return ray_session(self.ray_address, self.ray_cpus, self.home)
        from contextlib import nullcontext

        return nullcontext(None)

    def _log(
        self,
        uc: UseCase,
        boosters: dict[str, Any],
        holdout: pd.DataFrame,
        tf: Any,
        metadata: dict[str, Any],
        evaluation: Evaluation,
    ) -> ModelVersionInfo:
        features: list[str] = metadata["features"]
        tags = {
            "shopops.use_case": uc.name,
            "shopops.seed": str(metadata["seed"]),
            "shopops.source": metadata["source"],
            "shopops.features": ",".join(features),
            **{f"data_version.{k}": str(v) for k, v in metadata["data_versions"].items()},
        }
        name = f"{uc.name}-seed{metadata['seed']}"
        with (
            self.tracking.run(uc.name, name, tags) as run_id,
            tempfile.TemporaryDirectory(prefix="shopops-train-") as tmp,
        ):
            work = Path(tmp)
            flat_metrics = {k: v for k, v in evaluation.metrics.items() if not math.isnan(v)}
            for region, metrics in evaluation.per_region.items():
                flat_metrics.update({f"{region}.{k}": v for k, v in metrics.items() if not math.isnan(v)})
            for row in metadata["shap"]:
                flat_metrics[f"shap.{row['feature']}"] = float(row["mean_abs"])
            params = {k: v for k, v in metadata["params"].items()}
            params.update(
                {
                    "use_case": uc.name,
                    "features": ",".join(features),
                    "label": metadata["label"],
                    "holdout_fraction": self.holdout_fraction,
                    "source": metadata["source"],
                    "tuned": bool(metadata["tuned"]),
                }
            )
            self.tracking.log(run_id, params=params, metrics=flat_metrics)
            self._save_model(uc, boosters, holdout, features, work / MODEL_DIR)
            self.tracking.log_files(run_id, work / MODEL_DIR, MODEL_DIR)
            meta = work / META_DIR
            (meta / "boosters").mkdir(parents=True)
            for output, booster in boosters.items():
                booster.save_model(str(meta / "boosters" / f"{output}.txt"))
            (meta / METADATA).write_bytes(
                orjson.dumps(metadata, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2)
            )
            (meta / "shap_summary.json").write_bytes(
                orjson.dumps(metadata["shap"], option=orjson.OPT_INDENT_2)
            )
            keep = [
                c
                for c in holdout.columns
                if c in {*features, tf.label, tf.truth, "region", "event_timestamp"}
            ]
            holdout[keep].to_parquet(meta / HOLDOUT, index=False)
            self.tracking.log_files(run_id, meta, META_DIR)
            version = self.tracking.register(
                uc.name,
                run_id,
                MODEL_DIR,
                tags={
                    "shopops.use_case": uc.name,
                    f"shopops.{uc.primary_metric}": f"{evaluation.value:.6f}",
                    f"shopops.{uc.truth_ratio_metric}": f"{metadata['truth_check']['value']:.6f}",
                },
                description=f"{uc.name} trained with seed {metadata['seed']} "
                f"on {metadata['rows']['train']} rows",
            )
            card = build_card(
                name=uc.name,
                version=version.version,
                run_id=run_id,
                use_case=uc,
                metadata=metadata,
                owner=self.owner,
            )
            cards = work / CARD_DIR
            cards.mkdir()
            (cards / CARD_JSON).write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2))
            (cards / CARD_MD).write_text(render_markdown(card))
            self.tracking.log_files(run_id, cards, CARD_DIR)
            self.tracking.set_version_tag(uc.name, version.version, "shopops.card", f"{CARD_DIR}/{CARD_MD}")
        return version

    def _save_model(
        self, uc: UseCase, boosters: dict[str, Any], holdout: pd.DataFrame, features: list[str], path: Path
    ) -> None:
        """The MLflow model with its signature: a LightGBM flavor for one booster, a pyfunc for several."""
        from mlflow.models import infer_signature

        sample = holdout[features].head(50).astype(float)
        predictions = uc.predict(boosters, sample, features)
        requirements = _requirements()
        if len(boosters) == 1:
            import mlflow.lightgbm

            mlflow.lightgbm.save_model(
                next(iter(boosters.values())),
                str(path),
                signature=infer_signature(sample, next(iter(predictions.values()))),
                pip_requirements=requirements,
            )
            return
        import mlflow.pyfunc

        from shopops.ml.training.pyfunc import BoostersModel

        with tempfile.TemporaryDirectory(prefix="shopops-boosters-") as tmp, warnings.catch_warnings():
            # The model is our own class, pickled by reference; the signature is given explicitly.
            warnings.simplefilter("ignore")
            logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
            artifacts = {}
            for output, booster in boosters.items():
                booster_file = Path(tmp) / f"{output}.txt"
                booster.save_model(str(booster_file))
                artifacts[output] = str(booster_file)
            mlflow.pyfunc.save_model(
                str(path),
                python_model=BoostersModel(),
                artifacts=artifacts,
                signature=infer_signature(sample, pd.DataFrame(predictions)),
                model_config={"use_case": uc.name, "features": features},
                pip_requirements=requirements,
            )


def _requirements() -> list[str]:
    # Given explicitly: MLflow would otherwise infer them by importing the model in a subprocess.
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "lightgbm", "pandas", "numpy")]


def _window(holdout: pd.DataFrame) -> str:
    if holdout.empty:
        return "empty"
    first, last = holdout["event_timestamp"].min(), holdout["event_timestamp"].max()
    return f"{len(holdout)} newest rows, {first} .. {last}"
