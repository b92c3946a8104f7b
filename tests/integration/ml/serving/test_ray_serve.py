"""The scoring routes as a Ray Serve deployment on a local Ray cluster: same answers, same governance."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.e2e.helpers import free_port
from tests.integration.ml.serving.conftest import Trained
from tests.support.governance import bearer, key_for, open_governance

from shopops.core.settings import Settings
from shopops.ml.tracking.service import default_uris


@pytest.mark.slow
def test_ray_serve_deployment_scores_with_governance(trained: Trained, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    uri, artifacts = default_uris(trained.store, None, None)
    settings = Settings(
        home=tmp_path,
        ray={"address": "local", "num_cpus": 2},
        ml={
            "features": {"repo_dir": trained.world.home / "ml" / "feast"},
            "tracking": {"uri": uri, "artifact_location": artifacts},
            "serving": {"ray_serve": True, "ray_serve_port": free_port()},
        },
    )
    governance = open_governance(tmp_path)
    token = key_for(governance, "checkout", name="checkout-ray")
    governance.close()
    import ray

    from shopops.ml.serving.ray_serve import deploy, shutdown

    try:
        url = deploy(settings)
        order = pd.read_parquet(trained.world.home / "truth" / "fraud_truth.parquet").iloc[-1]
        body = {
            "customer_id": order.customer_id,
            "device_id": order.device_id,
            "card_fingerprint": order.card_fingerprint,
        }
        scored = httpx.post(f"{url}/v1/score/fraud", json=body, headers=bearer(token), timeout=60)
        assert scored.status_code == 200, scored.text
        assert scored.json()["version"] == trained.versions["fraud"]
        assert httpx.post(f"{url}/v1/score/fraud", json=body, timeout=60).status_code == 401
        unknown = httpx.post(
            f"{url}/v1/score/fraud",
            json={**body, "customer_id": "vn-c-9999999"},
            headers=bearer(token),
            timeout=60,
        )
        assert unknown.status_code == 404
    finally:
        try:
            shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)
