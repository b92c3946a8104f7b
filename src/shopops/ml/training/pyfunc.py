"""An MLflow pyfunc of several LightGBM boosters (the ETA model's P50 and P90), for MLflow tools.

The platform serves the native boosters directly (``shopops.ml.serving``); this wrapper is what
``mlflow models serve`` and ``mlflow.pyfunc.load_model`` see of a multi-output model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class BoostersModel(PythonModel):
    """Predicts one column per booster, each transformed as its use case serves it."""

    def load_context(self, context: Any) -> None:
        import lightgbm as lgb

        from shopops.ml.training.usecase import get_use_case

        meta = context.model_config or {}
        self.use_case = get_use_case(str(meta["use_case"]))
        self.features = list(meta["features"])
        self.boosters = {
            name: lgb.Booster(model_file=path) for name, path in sorted(context.artifacts.items())
        }

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        matrix = model_input[self.features].to_numpy(dtype=float)
        raw = {
            name: np.asarray(self.use_case.transform(name, np.asarray(b.predict(matrix))))
            for name, b in self.boosters.items()
        }
        return pd.DataFrame(self.use_case.consistent(raw))
