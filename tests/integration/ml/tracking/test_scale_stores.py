"""MLflow on its scale backends: PostgreSQL as the tracking and registry store, S3 (a real
moto server) as the artifact store — a model trained, registered, aliased and loaded back."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from tests.integration.ml.training.worlds import EventsWorld, events_world
from tests.support.postgres import scratch_database

from shopops.ml.serving.loader import load_model
from shopops.ml.tracking.service import CHAMPION, Tracking
from shopops.ml.training.service import TrainingService


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> EventsWorld:
    return events_world(tmp_path_factory.getbasetemp())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A moto S3 server on a free loopback port, with a bucket ``mlflow``; yields its URL."""
    port = _free_port()
    server = Path(sys.executable).with_name("moto_server")
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"moto_server did not start ({(tmp_path / 'moto.log').read_text()[-500:]}); "
                        "install it with pip install 'moto[server]'",
                        pytrace=False,
                    )
                time.sleep(0.1)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": url,
        }.items():
            monkeypatch.setenv(name, value)
        import boto3

        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="mlflow")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_postgres_store_and_s3_artifacts(world: EventsWorld, s3: str, tmp_path: Path) -> None:
    import boto3

    with scratch_database("shopops_mlflow") as dsn:
        info = conninfo_to_dict(dsn)
        user, port = info.get("user", "postgres"), info.get("port", 5432)
        uri = f"postgresql+psycopg://{user}@{info['host']}:{port}/{info['dbname']}"
        tracking = Tracking(uri, "s3://mlflow/runs", s3_endpoint_url=s3)
        service = TrainingService(tracking, world.frames, home=tmp_path, source_name="events")
        report = service.train("eta", seed=1)
        assert report.truth_ok
        tracking.set_alias("eta", report.version, CHAMPION)
        # A second client on the same PostgreSQL store sees the version and the alias.
        other = Tracking(uri, "s3://mlflow/runs", s3_endpoint_url=s3)
        assert other.alias_version("eta", CHAMPION) == report.version
        assert other.versions("eta")[0].source.startswith("s3://mlflow/runs/")
        # The artifacts are in the bucket, and the model loads back from there.
        keys = [
            o["Key"] for o in boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket="mlflow")["Contents"]
        ]
        assert any(k.endswith("/artifacts/shopops/boosters/p50.txt") for k in keys)
        assert any(k.endswith("/artifacts/model/MLmodel") for k in keys)
        assert any(k.endswith("/artifacts/card/model_card.md") for k in keys)
        model = load_model(
            other, "eta", report.version, tmp_path / "cache", expected_features=report.features
        )
        assert set(model.boosters) == {"p50", "p90"}
