"""Every schema change the simulator injects is caught with the right verdict, scored against its truth.

The simulator writes each change to ``schema_changes.parquet`` with the offsets of the first
version-2 record per partition. Under the registry's default level (BACKWARD):

- ``column_added`` (an optional column) and ``made_nullable`` are compatible: a new version is
  registered and nothing of the topic is quarantined;
- ``column_renamed`` and ``type_changed`` are incompatible: exactly the version-2 records (every
  non-tombstone record from the first version-2 offset on) are quarantined, the metric and the
  changes topic record it, and the topic's version 1 stands.

No other topic may lose a record (no false alarm). The same holds whether the schema comes from
the JSON-with-schema envelope (declared; registered as JSON Schema or as Avro) or is inferred from
plain JSON payloads.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from shopops.bootstrap import build_platform
from shopops.core.settings import Settings
from shopops.schemas.drift import DriftWatch, original_record, topic_records
from shopops.simulator.service import SimulationConfig, run_simulation

EXPECTED = {
    "column_added": "compatible",
    "made_nullable": "compatible",
    "column_renamed": "incompatible",
    "type_changed": "incompatible",
}


def _drift_count(subject: str, kind: str) -> float:
    return REGISTRY.get_sample_value("shopops_schema_drift_total", {"subject": subject, "kind": kind}) or 0.0


@pytest.mark.parametrize(
    ("envelope", "registered_as"),
    [("schema", "json"), ("schema", "avro"), ("plain", "json")],
    ids=["declared-as-json-schema", "declared-as-avro", "inferred"],
)
def test_each_injected_schema_change_gets_the_right_verdict(
    tmp_path: Path, envelope: str, registered_as: str
) -> None:
    platform = build_platform(Settings(home=tmp_path / "home", schemas={"drift": {"format": registered_as}}))
    try:
        config = SimulationConfig(regions=["vn", "sg"], days=5, orders_per_day=30, seed=11, envelope=envelope)
        report = run_simulation(config, platform.event_log, tmp_path / "truth")
        truth = pq.read_table(report.truth_files["schema_changes"]).to_pylist()
        assert {row["kind"] for row in truth} == set(EXPECTED)
        assert all(row["records_after"] > 0 for row in truth), "every change must show in the stream"

        settings = platform.settings.schemas.drift
        watch = DriftWatch(platform.event_log, platform.schema_client, settings)
        refused_before = {
            row["topic"]: _drift_count(f"{row['topic']}-value", "incompatible") for row in truth
        }
        stats = watch.drain()
        assert stats.checked == report.events

        quarantined: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for q in topic_records(platform.event_log, settings.quarantine_topic):
            original = original_record(q)
            quarantined[original.topic].add((original.partition, original.offset))
        changes = [
            orjson.loads(r.value)
            for r in topic_records(platform.event_log, settings.changes_topic)
            if r.value is not None
        ]
        registry = platform.schema_registry

        scores: list[tuple[str, str, str, str]] = []
        for row in truth:
            topic, subject = row["topic"], f"{row['topic']}-value"
            first = {int(p): o for p, o in orjson.loads(row["first_offsets"]).items()}
            after: set[tuple[int, int]] = set()
            for partition, start in first.items():
                records = platform.event_log.read(topic, partition, start, 1_000_000)
                after |= {(partition, r.offset) for r in records if r.value is not None}
            if quarantined.get(topic):
                verdict = "incompatible"
                assert quarantined[topic] == after, f"{topic}: exactly the version-2 records are quarantined"
                assert _drift_count(subject, "incompatible") > refused_before[topic]
                assert any(
                    c["event"] == "SchemaChangeQuarantined" and c["subject"] == subject for c in changes
                )
                if envelope == "schema":
                    assert registry.versions(subject) == [1]
            else:
                verdict = "compatible"
                assert len(registry.versions(subject)) >= 2, f"{topic}: the new version is registered"
                assert any(
                    c["event"] == "SchemaVersionRegistered" and c["subject"] == subject and c["version"] >= 2
                    for c in changes
                )
            scores.append((row["region"], row["kind"], EXPECTED[row["kind"]], verdict))

        wrong = [s for s in scores if s[2] != s[3]]
        right = len(scores) - len(wrong)
        print(f"\nschema changes scored ({envelope} envelopes, {registered_as}): {right}/{len(scores)} right")
        for region, kind, expected, got in scores:
            print(f"  {region} {kind:15} expected {expected:12} got {got}")
        assert not wrong

        # No false alarm: only the topics with an incompatible change lost records to quarantine.
        refused_topics = {row["topic"] for row in truth if EXPECTED[row["kind"]] == "incompatible"}
        assert set(quarantined) == refused_topics
        if envelope == "schema":
            changed = {f"{row['topic']}-value" for row in truth if EXPECTED[row["kind"]] == "compatible"}
            for subject in registry.subjects():
                assert registry.versions(subject) == ([1, 2] if subject in changed else [1]), subject
    finally:
        platform.close()
