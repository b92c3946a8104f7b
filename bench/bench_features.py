"""Online feature retrieval: p50/p99 per request for one entity, in-process and over HTTP.

    python bench/bench_features.py [--days 3] [--orders-per-day 50] [--requests 2000] [--json out.json]

Builds a small simulated world (2 regions) in a temporary data directory, ingests it into the lake
and materializes the feature store (SQLite online store), then measures, interleaved in rounds so
that the machine's load hits every variant alike, one entity per request:

- **direct SQLite read** (floor): the ``SELECT`` Feast's SQLite store issues per feature view, with
  pre-serialised entity keys, and the protobuf decoding of the values;
- **Feast** (baseline): ``FeatureStore.get_online_features(features=<feature service>,
  entity_rows=[row], full_feature_names=True).to_dict()`` on the same store;
- **FeatureService.online_features**: what serving calls (request checks, the direct read of the
  rows Feast wrote — ``ml.features.online_reads = "direct"``, the default — derived features);
- **HTTP** ``GET /v1/features/{use_case}`` on a real uvicorn server in this process (API key,
  Cedar decision, JSON), one keep-alive connection; next to ``GET /v1/auth/whoami`` on the same
  server, the platform's floor for any authenticated request.

Anchors (issue): Feast's Python feature server p99 < 5 ms; in-process ``get_online_features`` for
one entity p99 ≈ 0.5 ms on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import httpx
import pyarrow.parquet as pq
import uvicorn
from rich.console import Console
from rich.table import Table

from shopops.core.logging import configure_logging
from shopops.core.registry import BackendSelection
from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.simulator.service import SimulationConfig, run_simulation

console = Console()


def _world(home: Path, days: int, orders_per_day: int) -> None:
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        config = SimulationConfig(regions=["vn", "sg"], days=days, orders_per_day=orders_per_day, seed=3)
        run_simulation(config, log, home / "truth", parallel=False)
        LakeIngestor(log, open_catalog(None, None, home)).run_once()
    finally:
        log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _direct_reader(service: Any, entity: dict[str, str]) -> Callable[[], Any]:
    """The SQLite reads Feast does for the fraud views, without Feast around them."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from shopops.ml.features.model import VIEW_BY_NAME, use_case, views_of

    conn = sqlite3.connect(service.online_store.path, check_same_thread=False)
    queries = []
    for view in views_of(use_case("fraud")):
        keys = VIEW_BY_NAME[view].join_keys
        key = EntityKey(join_keys=list(keys), entity_values=[Value(string_val=entity[k]) for k in keys])
        queries.append(
            (
                f'SELECT feature_name, value, event_ts FROM "{service.project}_{view}" WHERE entity_key = ?',
                serialize_entity_key(key, entity_key_serialization_version=3),
            )
        )

    def read() -> Any:
        out = {}
        for sql, key_bin in queries:
            for name, blob, _ in conn.execute(sql, (key_bin,)):
                value = Value()
                value.ParseFromString(blob)
                out[name] = value
        return out

    return read


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "n": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--orders-per-day", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING", "console")

    from shopops.api.app import create_app
    from shopops.bootstrap import build_features, build_platform
    from shopops.ml.features.model import use_case

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        _world(home, args.days, args.orders_per_day)
        console.print(f"world: 2 regions, {args.days} days in {time.perf_counter() - started:.1f} s")
        settings = Settings(home=home)
        service = build_features(settings)
        service.apply()
        report = service.materialize()
        console.print(
            f"materialize: derive {report.derive_seconds:.2f} s, load {report.load_seconds:.2f} s, "
            f"{sum(report.rows.values()):,} rows"
        )

        last = pq.read_table(service.data_dir / "fraud_entities.parquet").to_pylist()[-1]
        fraud = {k: last[k] for k in ("customer_id", "device_id", "card_fingerprint", "order_id")}
        shipment = pq.read_table(service.data_dir / "eta_entities.parquet").to_pylist()[-1]
        eta = {k: shipment[k] for k in ("carrier", "route", "shipment_id", "order_id")}
        entities = {"fraud": fraud, "eta": eta}
        store = service.store
        feature_services = {name: store.get_feature_service(name) for name in entities}

        platform = build_platform(settings)
        app = create_app(settings, platform)
        app.state.features = service
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        token = platform.governance.create_key(
            kind="user", name="bench", roles=("ml_engineer",), home_region="vn"
        ).token
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )

        def feast_call(name: str) -> Callable[[], Any]:
            row = {k: v for k, v in entities[name].items()}
            fs = feature_services[name]
            return lambda: store.get_online_features(
                features=fs, entity_rows=[row], full_feature_names=True
            ).to_dict()

        def http_call(name: str) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(f"/v1/features/{name}", params=entities[name])
                response.raise_for_status()
                return response

            return call

        def whoami() -> Any:
            response = client.get("/v1/auth/whoami")
            response.raise_for_status()
            return response

        variants: dict[str, Callable[[], Any]] = {
            "fraud: direct SQLite read": _direct_reader(service, fraud),
            "HTTP GET /v1/auth/whoami (API floor)": whoami,
        }
        for name in entities:
            variants[f"{name}: Feast get_online_features"] = feast_call(name)
            variants[f"{name}: FeatureService.online_features"] = (
                lambda name=name: service.online_features(name, entities[name])  # type: ignore[misc]
            )
            variants[f"{name}: HTTP GET /v1/features/{name}"] = http_call(name)
        assert service.online_features("fraud", fraud).missing == []
        assert len(service.online_features("eta", eta).values) == len(use_case("eta").features)

        samples: dict[str, list[float]] = {k: [] for k in variants}
        for fn in variants.values():  # warm-up: caches, connections, first-call imports
            for _ in range(100):
                fn()
        rounds = 10
        per_round = max(1, args.requests // rounds)
        for _ in range(rounds):
            for name, fn in variants.items():
                bucket = samples[name]
                for _ in range(per_round):
                    t = time.perf_counter()
                    fn()
                    bucket.append(time.perf_counter() - t)
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
        platform.close()

    results = {name: _stats(s) for name, s in samples.items()}
    table = Table(title=f"online features, one entity per request ({per_round * rounds} requests each)")
    for column in ("variant", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['mean_ms']:.3f}")
    console.print(table)
    console.print(
        "anchors: Feast feature server p99 < 5 ms; in-process get_online_features p99 ≈ 0.5 ms (SQLite)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"materialize": report.to_dict() | {"data_versions": None}, "online": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
