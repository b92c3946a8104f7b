"""The portal's data pages: contracts with their latest checks, the catalog, lineage trees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.integration.quality.world import BadWorld
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform, build_platform, build_quality
from shopops.catalog.model import Column, ColumnEdge, DatasetKind
from shopops.core.settings import Settings
from shopops.quality.sources import ParquetSource


@pytest.fixture
def platform(tmp_path: Path, bad_world: BadWorld) -> Iterator[Platform]:
    data = tmp_path / "parquet"
    data.mkdir()
    for name in ("shop.order_lines", "shop.orders", "shop.products"):
        pq.write_table(bad_world.tables[name], data / f"{name}.parquet")
    platform = build_platform(Settings(home=tmp_path / "home"))
    service = build_quality(platform.settings)
    try:
        service.check(ParquetSource(data), ["shop.order_lines"], now_ms=bad_world.end_ms)
    finally:
        service.close()
    catalog = platform.catalog
    catalog.register_dataset(
        "vn.shop.customers",
        kind=DatasetKind.TOPIC,
        columns=(Column("customer_id", "string"), Column("email", "string")),
        registered_by="test",
    )
    catalog.record_run(
        "lake.ingest",
        ["vn.shop.customers"],
        ["silver.vn__shop__customers"],
        column_lineage=[ColumnEdge("vn.shop.customers", "email", "silver.vn__shop__customers", "email")],
    )
    catalog.record_run("ml.features", ["silver.vn__shop__customers"], ["features.customer_stats"])
    yield platform
    platform.close()


@pytest.fixture
def person(platform: Platform) -> Iterator[TestClient]:
    headers = bearer(key_for(platform.governance, "support"))
    with TestClient(create_app(platform=platform), headers=headers) as client:
        yield client


def test_data_page_shows_each_contract_with_its_latest_check(person: TestClient) -> None:
    page = person.get("/data")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<nav>" in html
    assert "data contracts<b class=>13</b>" in html
    assert "checked (whole table)<b class=>1</b>" in html
    assert "failing a check<b class=bad>1</b>" in html
    row = html.split("shop.order_lines</a></td>", 1)[1].split("</tr>", 1)[0]
    assert "failed</a>" in row
    assert "<td>checkout</td>" in row
    assert "not checked yet" in html.split("shop.orders</a></td>", 1)[1].split("</tr>", 1)[0]
    # The catalog, by kind, each name linking to its lineage page.
    assert "<b>topic</b> — 1" in html
    assert "href='/lineage/silver.vn__shop__customers'" in html


def test_lineage_page_draws_both_trees_and_the_column_lineage(person: TestClient) -> None:
    page = person.get("/lineage/silver.vn__shop__customers")
    assert page.status_code == 200, page.text
    html = page.text
    upstream, downstream = html.split("Upstream", 1)[1].split("Downstream", 1)
    assert "lake.ingest" in upstream
    assert "href='/lineage/vn.shop.customers'" in upstream
    assert "ml.features" in downstream
    assert "href='/lineage/features.customer_stats'" in downstream
    assert "Column lineage" in html
    topic = person.get("/lineage/vn.shop.customers").text
    # The contract of shop.customers names the owner and marks email as personal data.
    assert "<th>owner</th><td>customer-identity</td>" in topic
    assert "<tr><td>email</td><td>string</td><td><span class='tag pii'>pii</span>" in topic


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/lineage/no.such.dataset", 404, "no.such.dataset"),
        ("/lineage/vn.shop.customers?depth=0", 422, "depth must be between 1 and 10"),
        ("/lineage/vn.shop.customers?depth=x", 422, "depth"),
    ],
)
def test_bad_lineage_requests_say_what_to_fix(
    person: TestClient, url: str, status: int, fragment: str
) -> None:
    response = person.get(url)
    assert response.status_code == status, response.text
    assert fragment in response.text


def test_portal_pages_need_credentials(platform: Platform) -> None:
    with TestClient(create_app(platform=platform)) as anonymous:
        assert anonymous.get("/data", follow_redirects=False).status_code in (302, 303, 307, 401)
