"""`shopops up` runs the drift watch beside the CDC monitor and serves the registry on the platform."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from tests.e2e.helpers import Server


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_up_watches_the_demo_world_and_quarantines_its_incompatible_changes(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(
        tmp_path / "home",
        SHOPOPS_SIMULATOR__REGIONS='["vn"]',
        SHOPOPS_SIMULATOR__DAYS="5",
        SHOPOPS_SIMULATOR__ORDERS_PER_DAY="15",
    )
    server.wait_healthy()
    subject = "vn.logistics.shipments-value"
    deadline = time.monotonic() + 90
    refused = evolved = 0.0
    while time.monotonic() < deadline:
        # The watch works through the seeded topics in the background: wait until it has seen both.
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
        refused = _metric(metrics, "shopops_schema_drift_total", subject=subject, kind="incompatible")
        evolved = _metric(
            metrics, "shopops_schema_drift_total", subject="vn.shop.orders-value", kind="compatible"
        )
        if refused and evolved:
            break
        time.sleep(0.5)
    assert (refused, evolved) == (1, 1), server.output()
    assert _metric(metrics, "shopops_schema_quarantined_total", subject=subject) > 0
    assert "schema drift: incompatible change quarantined" in server.output()

    # The platform's registry is the one the watch wrote to, through the Confluent client.
    client = SchemaRegistryClient(
        {"url": f"{server.url}/schema-registry", "basic.auth.user.info": f"admin:{server.admin_key()}"}
    )
    assert subject in client.get_subjects()
    assert client.get_versions("vn.shop.orders-value") == [1, 2]
    assert client.get_latest_version(subject).version == 1
    assert server.stop() == 0
