"""Batch scoring of a table: a Parquet file (or folder) in, the same rows with predictions out.

In-process it streams the input in record batches through the native boosters; with
``ray.address`` set the same scoring function runs over a Ray Dataset (``map_batches``), so a
large table is scored by the cluster's workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.ml.serving.loader import LoadedModel


@dataclass
class BatchReport:
    model: str
    version: int
    rows: int
    defaulted: int
    output: str
    backend: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def score_frame(
    frame: pd.DataFrame, features: list[str], defaults: np.ndarray, boosters: dict[str, Any], use_case: Any
) -> pd.DataFrame:
    """``frame`` with one prediction column per output (and ``defaulted``: features filled in)."""
    matrix = frame[features].to_numpy(dtype=float)
    holes = np.isnan(matrix)
    matrix = np.where(holes, defaults, matrix)
    out = frame.copy()
    raw = {name: use_case.transform(name, booster.predict(matrix)) for name, booster in boosters.items()}
    for name, values in use_case.consistent(raw).items():
        out["fraud_score" if use_case.name == "fraud" else f"{name}_hours"] = values
    out["defaulted"] = holes.sum(axis=1)
    return out


def _check(model: LoadedModel, columns: list[str]) -> None:
    absent = [f for f in model.features if f not in columns]
    if absent:
        raise InvalidInputError(
            f"the input lacks feature column(s) of {model.name} v{model.version}: {', '.join(absent)}",
            hint=f"the model needs {', '.join(model.features)}",
        )


def score_table(
    model: LoadedModel, source: Path, output: Path, *, ray: Any = None, batch_rows: int = 65_536
) -> BatchReport:
    """Score every row of the Parquet ``source`` into ``output`` (a file in-process, a folder on Ray)."""
    import pyarrow.parquet as pq

    if not source.exists():
        raise NotFoundError(f"no table at {source}", hint="give a Parquet file or a folder of Parquet files")
    started = time.perf_counter()
    features, defaults, boosters, use_case = model.features, model.defaults, model.boosters, model.use_case
    if ray is not None:
        dataset = ray.data.read_parquet(str(source))
        _check(model, list(dataset.schema().names))

        def batch(frame: pd.DataFrame) -> pd.DataFrame:
            return score_frame(frame, features, defaults, boosters, use_case)

        scored = dataset.map_batches(batch, batch_format="pandas")
        output.mkdir(parents=True, exist_ok=True)
        scored.write_parquet(str(output))
        rows = int(scored.count())
        defaulted = int(scored.sum("defaulted") or 0) if rows else 0
        return BatchReport(
            model.name, model.version, rows, defaulted, str(output), "ray", time.perf_counter() - started
        )
    dataset_pq = pq.ParquetDataset(str(source))
    _check(model, list(dataset_pq.schema.names))
    rows = defaulted = 0
    writer: pq.ParquetWriter | None = None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    try:
        for fragment in dataset_pq.fragments:
            for record_batch in fragment.to_batches(batch_size=batch_rows):
                frame = score_frame(record_batch.to_pandas(), features, defaults, boosters, use_case)
                rows += len(frame)
                defaulted += int(frame["defaulted"].sum())
                import pyarrow as pa

                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise InvalidInputError(f"{source} holds no rows", hint="score a table with at least one row")
    tmp.replace(output)  # readers never see a half-written result
    return BatchReport(
        model.name, model.version, rows, defaulted, str(output), "in-process", time.perf_counter() - started
    )
