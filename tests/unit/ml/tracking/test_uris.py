"""Where the embedded MLflow store lives, and URIs never show passwords."""

from __future__ import annotations

from pathlib import Path

from shopops.ml.tracking.service import _redact, default_uris


def test_embedded_defaults_under_the_data_directory(tmp_path: Path) -> None:
    uri, artifacts = default_uris(tmp_path, None, None)
    assert uri == f"sqlite:///{tmp_path.resolve()}/ml/mlflow.db"
    assert artifacts == (tmp_path / "ml" / "artifacts").resolve().as_uri()
    assert default_uris(tmp_path, "postgresql+psycopg://u@h/db", "s3://b/p/") == (
        "postgresql+psycopg://u@h/db",
        "s3://b/p",
    )


def test_passwords_are_redacted() -> None:
    assert (
        _redact("postgresql+psycopg://ml:secret@db:5432/mlflow")
        == "postgresql+psycopg://ml:***@db:5432/mlflow"
    )
    assert _redact("sqlite:////x/mlflow.db") == "sqlite:////x/mlflow.db"
