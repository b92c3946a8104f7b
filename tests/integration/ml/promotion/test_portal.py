"""The portal's models pages: versions, champion, metrics, and the rendered model card."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.integration.ml.promotion.conftest import Bench
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import build_platform
from shopops.core.settings import Settings
from shopops.governance.model import Principal


def test_models_page_and_card(bench: Bench, mia: Principal) -> None:
    first = bench.training.train("eta", seed=1)
    bench.promotion().promote("eta", first.version, mia, ["lead"])
    platform = build_platform(Settings(home=bench.home))
    try:
        headers = bearer(key_for(platform.governance, "support"))
        with TestClient(create_app(platform=platform), headers=headers) as client:
            page = client.get("/models")
            assert page.status_code == 200, page.text
            html = page.text
            assert f"champion <b class=ok>v{first.version}</b>" in html
            assert "· 1 version</p>" in html
            assert "<span class=tag>champion</span>" in html
            assert "<th>mae</th>" in html
            card = client.get(f"/models/eta/card?version={first.version}")
            assert card.status_code == 200, card.text
            assert "<h2>Intended use</h2>" in card.text
            assert "<script" not in card.text
            missing = client.get("/models/nope/card")
            assert missing.status_code == 404
            assert "nope" in missing.text
            assert client.get("/models/eta/card?version=0").status_code == 422
            assert client.get("/models/eta/card?version=99").status_code == 404
    finally:
        platform.close()


def test_models_page_without_models_says_how_to_get_one(bench: Bench) -> None:
    platform = build_platform(Settings(home=bench.home))
    try:
        headers = bearer(key_for(platform.governance, "support"))
        with TestClient(create_app(platform=platform), headers=headers) as client:
            page = client.get("/models")
            assert page.status_code == 200, page.text
            assert "No registered model yet" in page.text
    finally:
        platform.close()
