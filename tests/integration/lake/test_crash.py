"""The lake worker SIGKILLed at random points while a simulated day streams in, restarted each
time: at the end every silver table equals the final state folded independently from the log —
no loss, no duplicate — on the SQLite and the Kafka event logs. The worker follows the schema
registry (the default settings): the two changes it refuses are left out of silver and each of
their events is quarantined once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
from tests.conftest import EventLogFactory
from tests.e2e.helpers import SHOPOPS
from tests.integration.lake.reference import differences, fold, refused_by_backward, topics_of

from shopops.lake.bronze import BronzeTable
from shopops.lake.catalog import open_catalog
from shopops.lake.quarantine import QuarantineTable
from shopops.lake.silver import SilverTable, read_silver
from shopops.simulator.service import SimulationConfig, run_simulation

#: A region no other lake test uses (the Kafka broker is shared by the test session).
REGION = "ph"


def _positions(home: Path, topics: list[str]) -> tuple[int, int]:
    """Events the bronze and the silver tables say they have applied (their committed positions)."""
    catalog = open_catalog(None, None, home)
    names = {
        i[-1]
        for ns in ("bronze", "silver")
        if (ns,) in catalog.list_namespaces()
        for i in catalog.list_tables(ns)
    }
    bronze = silver = 0
    for topic in topics:
        if topic.replace(".", "__") in names:
            bronze += sum(BronzeTable(catalog, topic).committed_offsets().values())
            silver += sum(SilverTable(catalog, topic).committed_offsets().values())
    return bronze, silver


def test_a_worker_killed_while_a_day_streams_in_leaves_silver_exact(
    event_log_factory: EventLogFactory, tmp_path: Path
) -> None:
    log = event_log_factory()
    config = SimulationConfig(regions=[REGION], days=1, orders_per_day=60, seed=23, envelope="mixed")
    simulated: list[BaseException | None] = []

    def simulate() -> None:
        try:
            run_simulation(config, log, tmp_path / "truth", realtime_rate=110)
            simulated.append(None)
        except BaseException as exc:
            simulated.append(exc)

    producer = threading.Thread(target=simulate, name="simulated-day")
    producer.start()
    selection = event_log_factory.selection()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHOPOPS_")},
        "SHOPOPS_HOME": str(tmp_path),
        "SHOPOPS_LOGGING__FORMAT": "json",
        "SHOPOPS_EVENTS__TYPE": selection.type,
        **{f"SHOPOPS_EVENTS__{k.upper()}": str(v) for k, v in selection.options().items()},
    }
    command = [*SHOPOPS, "lake", "ingest", "--batch", "300", "--topics", f"^{REGION}\\."]
    # Workers that keep following the log, so that every kill lands on a live one.
    env_follow = {**env, "SHOPOPS_LAKE__INTERVAL_S": "0.2"}
    rng = random.Random(5)
    kills = 0
    while not topics_of(log, [REGION]):
        time.sleep(0.1)
    topics = topics_of(log, [REGION])
    for _ in range(3):
        before = _positions(tmp_path, topics)
        proc = subprocess.Popen(
            [*command, "--follow"], env=env_follow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Wait for a new commit (a start costs a few seconds), then kill it a moment later. Once
        # the day has streamed in, there may be nothing new to commit: kill it anyway.
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and _positions(tmp_path, topics) == before
            and (producer.is_alive() or time.monotonic() < deadline - 52)
        ):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, "the following worker stopped by itself"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
        assert _positions(tmp_path, topics) >= before  # what was committed stays
    producer.join(120)
    assert simulated == [None]
    assert kills == 3
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    catalog = open_catalog(None, None, tmp_path)
    for topic in topics_of(log, [REGION]):
        _, database, table = topic.split(".")
        silver = read_silver(catalog, f"{database}.{table}", [REGION])
        assert differences(fold(log, topic, refused=refused_by_backward), silver) == [], topic
        assert SilverTable(catalog, topic).committed_offsets() == log.end_offsets(topic)
        refused = sorted((r.partition, r.offset) for r in log.read_all(topic) if refused_by_backward(r))
        held = QuarantineTable(catalog, topic).read()
        if refused:  # each refused event quarantined once, across the kills
            at = [held.column(c).to_pylist() for c in ("_partition", "_offset")]
            assert sorted(zip(*at, strict=True)) == refused, topic
        assert held.num_rows == len(refused), topic
        # Bronze too: every record exactly once.
        bronze = BronzeTable(catalog, topic).table.scan(selected_fields=("partition", "offset")).to_arrow()
        assert bronze.num_rows == sum(log.end_offsets(topic).values())
        assert (
            pc.count_distinct(
                pc.add(
                    pc.multiply(bronze.column("partition").cast("int64"), 1 << 40), bronze.column("offset")
                )
            ).as_py()
            == bronze.num_rows
        )
