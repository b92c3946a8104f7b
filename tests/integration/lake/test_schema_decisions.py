"""Silver follows the schema registry (the built-in one, on its SQLite store) on the simulator's
four schema changes: accepted changes evolve the tables, refused ones are quarantined with the
registry's reason and leave each key at its earlier state, an unreachable registry fails the
round without committing anything, and a change accepted later flows in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest
from prometheus_client import REGISTRY
from pyiceberg.types import StringType
from tests.integration.lake.reference import differences, fold, refused_by_backward, topics_of
from typer.testing import CliRunner

from shopops.bootstrap import Platform, build_lake_ingestor, build_platform
from shopops.core.errors import BackendUnavailableError
from shopops.core.settings import Settings
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.lake.bronze import BronzeTable
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.lake.quarantine import QuarantineTable
from shopops.lake.registry import RegistrySchemaDecisions
from shopops.lake.silver import SilverTable, read_silver
from shopops.schemas.drift import SchemaGate
from shopops.schemas.errors import RegistryUnavailableError
from shopops.schemas.model import CompatibilityLevel
from shopops.simulator.service import SimulationConfig, run_simulation

REGIONS = ["vn", "sg"]
#: The datasets whose change the registry refuses at its default level, and why.
REFUSED = {
    "shop.customers": "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "logistics.shipments": "TYPE_CHANGED",
}


def _platform(home: Path, envelope: str) -> Platform:
    platform = build_platform(Settings(home=home))
    config = SimulationConfig(regions=REGIONS, days=3, orders_per_day=30, seed=11, envelope=envelope)
    run_simulation(config, platform.event_log, home / "truth")
    return platform


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    opened = _platform(tmp_path / "home", "schema")
    yield opened
    opened.close()


def _records(log: EventLog, topic: str) -> list[Record]:
    return list(log.read_all(topic))


def _refused_count(table: str) -> float:
    return REGISTRY.get_sample_value("shopops_lake_schema_refused_total", {"table": table}) or 0.0


@pytest.mark.parametrize("envelope", ["schema", "plain"])
def test_accepted_changes_evolve_silver_and_refused_ones_are_quarantined_with_the_reason(
    tmp_path: Path, envelope: str
) -> None:
    platform = _platform(tmp_path / "home", envelope)
    try:
        log = platform.event_log
        ingestor = build_lake_ingestor(
            platform.settings, log, registry=platform.schema_client, batch_records=500
        )
        before = {t: _refused_count(f"silver.{t.replace('.', '__')}") for t in topics_of(log, REGIONS)}
        assert ingestor.run_once() > 0
        catalog = ingestor.catalog
        for topic in topics_of(log, REGIONS):
            region, database, table = topic.split(".")
            dataset = f"{database}.{table}"
            refused = {(r.partition, r.offset) for r in _records(log, topic) if refused_by_backward(r)}
            assert bool(refused) == (dataset in REFUSED), topic
            # Silver: every event but the refused ones, each key at its latest accepted state.
            silver = read_silver(catalog, dataset, [region])
            assert differences(fold(log, topic, refused=refused_by_backward), silver) == [], topic
            # The stream went on past them: silver and bronze are at the end of the log.
            assert SilverTable(catalog, topic).committed_offsets() == log.end_offsets(topic)
            bronze = BronzeTable(catalog, topic).table.scan(selected_fields=("offset",)).to_arrow()
            assert bronze.num_rows == sum(log.end_offsets(topic).values())  # bronze keeps them all
            quarantine = QuarantineTable(catalog, topic).read()
            assert quarantine.num_rows == len(refused), topic
            if not refused:
                continue
            got = set(
                zip(
                    quarantine.column("_partition").to_pylist(),
                    quarantine.column("_offset").to_pylist(),
                    strict=True,
                )
            )
            assert got == refused, topic
            assert set(quarantine.column("_check").to_pylist()) == {"schema"}
            for reason in set(quarantine.column("_reason").to_pylist()):
                assert reason.startswith(f"{topic}-value: incompatible schema under BACKWARD: "), reason
                assert REFUSED[dataset] in reason
            name = f"silver.{topic.replace('.', '__')}"
            assert _refused_count(name) - before[topic] == len(refused)

        for region in REGIONS:
            # Accepted: a column added (orders.channel); a column made optional needs nothing.
            orders = catalog.load_table(f"silver.{region}__shop__orders").schema()
            assert orders.find_field("channel").field_type == StringType()
            # Refused: silver keeps its schema; the quarantine holds the new columns, placed by
            # silver's rules (a type change Iceberg cannot apply in place is a versioned column).
            customers = catalog.load_table(f"silver.{region}__shop__customers").schema()
            names = {f.name for f in customers.fields}
            assert "phone" in names
            assert "phone_number" not in names
            shipments = catalog.load_table(f"silver.{region}__logistics__shipments").schema()
            assert "weight_kg__v2" not in {f.name for f in shipments.fields}
            held = catalog.load_table(f"quarantine.{region}__logistics__shipments").schema()
            assert held.find_field("weight_kg__v2").field_type == StringType()
            held = catalog.load_table(f"quarantine.{region}__shop__customers").schema()
            assert held.find_field("phone_number").field_type == StringType()

        # Caught up: a second round reads nothing, asks nothing, commits nothing.
        assert ingestor.run_once() == 0
    finally:
        platform.close()


class _Lines(list[tuple[str, str]]):
    """The lake's log lines (level, event), recorded instead of logged."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        for module in ("shopops.lake.silver", "shopops.lake.ingest"):
            monkeypatch.setattr(f"{module}.log", self)

    def __getattr__(self, level: str) -> Any:
        return lambda event, **_: self.append((level, event))


class _Outage:
    """The registry client's calls fail as with a registry that cannot be reached, while ``down``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
        self.down = True
        self.calls = 0
        for name in ("lookup", "register", "check", "latest", "schema"):
            real = getattr(client, name)
            monkeypatch.setattr(client, name, self._wrap(real))

    def _wrap(self, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.calls += 1
                raise RegistryUnavailableError("schema registry at http://registry:8081 is unreachable")
            return real(*args, **kwargs)

        return call


def test_an_unreachable_registry_fails_the_round_and_commits_nothing_to_silver(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = platform.event_log
    topics = "^vn\\.shop\\.(orders|customers)$"
    outage = _Outage(monkeypatch, platform.schema_client)
    catalog = open_catalog(None, None, tmp_path / "lake")
    gate = SchemaGate(platform.schema_client, platform.settings.schemas.drift)
    ingestor = LakeIngestor(
        log, catalog, topics=topics, batch_records=500, schemas=RegistrySchemaDecisions(gate), interval_s=0.05
    )
    lines = _Lines(monkeypatch)
    with pytest.raises(BackendUnavailableError):
        ingestor.run_once()
    assert outage.calls > 0
    assert any(
        level == "error" and event.startswith("schema registry unreachable") for level, event in lines
    ), lines
    # A new table's first schema needs the registry: nothing was applied, no guess was made.
    for topic in ingestor.topics():
        assert SilverTable(catalog, topic).committed_offsets() == {}
        assert not QuarantineTable(catalog, topic).exists()

    # The worker keeps retrying its rounds; once the registry answers, silver catches up.
    ingestor.start()
    try:
        time.sleep(0.3)
        assert all(SilverTable(catalog, t).committed_offsets() == {} for t in ingestor.topics())
        outage.down = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            SilverTable(catalog, t).committed_offsets() != log.end_offsets(t) for t in ingestor.topics()
        ):
            time.sleep(0.1)
    finally:
        ingestor.stop()
    assert ("error", "lake ingest failed") in lines
    for topic in ingestor.topics():
        region, database, table = topic.split(".")
        silver = read_silver(catalog, f"{database}.{table}", [region])
        assert differences(fold(log, topic, refused=refused_by_backward), silver) == [], topic


def _produce_v2_update(log: EventLog, topic: str, weight: str) -> tuple[str, int]:
    """A new update of an existing shipment with the refused (version 2) schema, newer than every
    event of the topic; returns its key text and LSN."""
    records = [r for r in _records(log, topic) if r.value is not None and refused_by_backward(r)]
    last = records[-1]
    assert last.value is not None
    assert last.key is not None
    doc = orjson.loads(last.value)
    top = max(
        orjson.loads(r.value)["payload"]["source"]["lsn"] for r in _records(log, topic) if r.value is not None
    )
    payload = doc["payload"]
    payload["op"] = "u"
    payload["after"] = {**(payload["after"] or payload["before"]), "weight_kg": weight}
    payload["source"]["lsn"] = top + 1
    log.produce(topic, orjson.dumps(doc), last.key, timestamp_ms=last.timestamp_ms + 1)
    log.flush()
    key = orjson.loads(last.key)
    return orjson.dumps(key.get("payload", key)).decode(), top + 1


def test_a_change_the_operator_accepts_later_flows_into_silver_and_replays_from_quarantine(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopops.cli.main import app

    log = platform.event_log
    topic = "vn.logistics.shipments"
    settings = platform.settings
    # The worker of `shopops up`, on the lake of the settings (the command line reads the same).
    # Refusals are judged again at once here (the drift watch's default is after 30 s).
    gate = SchemaGate(platform.schema_client, settings.schemas.drift, recheck_after_s=0.0)
    ingestor = build_lake_ingestor(settings, log, topics=f"^{topic}$", batch_records=500)
    ingestor.schemas = RegistrySchemaDecisions(gate)
    catalog = ingestor.catalog
    ingestor.run_once()
    quarantined = QuarantineTable(catalog, topic).read().num_rows
    assert quarantined > 0
    silver_schema = catalog.load_table("silver.vn__logistics__shipments").schema()
    assert "weight_kg__v2" not in {f.name for f in silver_schema.fields}

    # Still refused: a new event of the refused schema is quarantined too.
    _produce_v2_update(log, topic, "41.500")
    ingestor.run_once()
    assert QuarantineTable(catalog, topic).read().num_rows == quarantined + 1
    quarantined += 1

    monkeypatch.setenv("SHOPOPS_HOME", str(settings.home))
    runner = CliRunner()

    def replay(*args: str) -> str:
        done = runner.invoke(app, ["lake", "replay-quarantine", *args])
        assert done.exit_code == 0, done.output
        return " ".join(done.output.split())

    # Nothing passes yet: nothing is written, nothing is quarantined twice.
    assert f"{quarantined:,} quarantined events considered; 0 rows written" in replay(
        topic, "--check", "schema"
    )
    assert QuarantineTable(catalog, topic).read().num_rows == quarantined

    # The operator accepts the change for this subject; the next events of that schema flow in.
    platform.schema_client.set_compatibility(CompatibilityLevel.NONE, f"{topic}-value")
    key, lsn = _produce_v2_update(log, topic, "42.250")
    ingestor.run_once()
    assert QuarantineTable(catalog, topic).read().num_rows == quarantined
    table = catalog.load_table("silver.vn__logistics__shipments")
    # Iceberg cannot turn double into string in place: the accepted change is a versioned column.
    assert table.schema().find_field("weight_kg__v2").field_type == StringType()
    assert table.properties["shopops.accepted-schemas"]  # remembered: a restart asks no more

    # The quarantined events now pass: replayed, by LSN (the newer update of `key` stays).
    out = replay(topic, "--check", "schema")
    written = int(out.split("; ")[1].split(" rows")[0].replace(",", ""))
    assert written > 0
    rows = read_silver(catalog, "logistics.shipments", ["vn"])
    assert differences(fold(log, topic), rows) == []  # every event applied, each key at its newest
    row = rows.filter(pc.equal(rows.column("_key"), key)).to_pylist()
    assert len(row) == 1
    assert row[0]["weight_kg__v2"] == "42.250"
    assert row[0]["_lsn"] == lsn
    # Idempotent: a second replay writes nothing; silver's position never moved.
    assert "0 rows written" in replay(topic)
    assert differences(fold(log, topic), read_silver(catalog, "logistics.shipments", ["vn"])) == []
    assert SilverTable(catalog, topic).committed_offsets() == log.end_offsets(topic)

    bad = runner.invoke(app, ["lake", "replay-quarantine", "shipments"])
    assert bad.exit_code == 2
    assert "is not a CDC topic" in bad.output
    missing = runner.invoke(app, ["lake", "replay-quarantine", "vn.shop.orders"])
    assert missing.exit_code == 3
    assert "no quarantine table for vn.shop.orders" in missing.output
