"""One-row predictions through LightGBM's single-row fast C API.

``Booster.predict`` on one row builds a predictor object, checks and converts its input and parses
its parameters on every call: with ``pred_contrib=True`` that is about two thirds of the call on
the fraud model (~370 µs against ~125 µs). ``LGBM_BoosterPredictForMatSingleRowFast`` parses the
parameters once (``...FastInit``) and predicts straight from a float64 row; its output is
``Booster.predict``'s, bit for bit (a test compares them). When the library does not offer it,
``Booster.predict`` is used.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any

import numpy as np

from shopops.core.logging import get_logger

log = get_logger(__name__)

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's output (probability, hours...)
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB: SHAP values per feature, then the expected value
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class RowPredictor:
    """Predicts one row (float64, the booster's features in order) with one booster.

    ``contrib=True`` gives ``n_features + 1`` values: each feature's SHAP contribution, then the
    expected value; their sum is the raw score (log-odds for a binary objective).
    """

    def __init__(self, booster: Any, *, contrib: bool = False, num_threads: int = 1) -> None:
        self.booster = booster  # the fast handle points into it: keep it alive as long as this
        self.contrib = contrib
        self.num_threads = num_threads
        self.n_features = int(booster.num_feature())
        self.width = self.n_features + 1 if contrib else 1
        # The booster's own choice when predict() is called without num_iteration.
        self.num_iteration = int(booster.best_iteration)
        self._lock = threading.Lock()
        self._lib: Any = None
        self._check: Any = None
        self._handle: ctypes.c_void_p | None = None
        self._written = ctypes.c_int64()  # the output length LightGBM reports (under the lock)
        try:
            self._init_fast()
        except Exception as exc:  # a LightGBM build without it: Booster.predict gives the same
            log.warning("LightGBM single-row fast path unavailable; using Booster.predict", error=str(exc))
            self._handle = None

    def _init_fast(self) -> None:
        from lightgbm.basic import _c_str, _safe_call
        from lightgbm.libpath import _LIB

        handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                self.booster._handle,
                ctypes.c_int(_PREDICT_CONTRIB if self.contrib else _PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(self.num_iteration),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self.n_features),
                _c_str(f"num_threads={self.num_threads}"),
                ctypes.byref(handle),
            )
        )
        self._lib, self._check, self._handle = _LIB, _safe_call, handle

    @property
    def fast(self) -> bool:
        """Whether the single-row fast path is used (else ``Booster.predict``)."""
        return self._handle is not None

    def predict(self, row: np.ndarray) -> np.ndarray:
        """The prediction (``width`` values) of ``row``: a contiguous float64 vector of the features."""
        if self._handle is None:
            out: np.ndarray = self.booster.predict(
                row.reshape(1, -1), pred_contrib=self.contrib, num_threads=self.num_threads
            )
            return out.reshape(-1)
        if row.dtype != np.float64 or not row.flags.c_contiguous or row.shape != (self.n_features,):
            raise ValueError(f"expected a contiguous float64 row of {self.n_features} features")
        result = np.empty(self.width, dtype=np.float64)
        # LightGBM reuses one predictor per fast handle: one call at a time.
        with self._lock:
            self._check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle,
                    ctypes.c_void_p(row.ctypes.data),
                    ctypes.byref(self._written),
                    ctypes.c_void_p(result.ctypes.data),
                )
            )
        return result

    def close(self) -> None:
        """Free the fast handle (idempotent; also done when the predictor is collected)."""
        with self._lock:
            if self._handle is not None:
                self._check(self._lib.LGBM_FastConfigFree(self._handle))
                self._handle = None

    def __del__(self) -> None:
        # At interpreter shutdown the library may already be gone: nothing left to free then.
        with contextlib.suppress(Exception):
            self.close()
