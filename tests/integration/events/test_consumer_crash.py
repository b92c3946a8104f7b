"""At-least-once, proven by killing: a consumer process is SIGKILLed mid-stream and a new member
of its group resumes exactly at the committed offsets, on every backend.

The consumer (``crash_consumer.py``) records each delivered (partition, offset) durably before it
commits. After the kill and a restart in the same group:

(a) no record below the offsets committed at kill time is delivered again;
(b) each partition resumes exactly at its committed offset;
(c) everything produced was delivered by one run or the other: nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shopops.events.model import OutgoingRecord

if TYPE_CHECKING:
    from conftest import EventLogFactory

HELPER = Path(__file__).with_name("crash_consumer.py")
PARTITIONS = 4
TOTAL = 20_000
BATCH = 500


def delivered_before_kill(path: Path) -> set[tuple[int, int]]:
    """The positions the killed process wrote; a line cut short by the kill is ignored."""
    seen: set[tuple[int, int]] = set()
    if not path.exists():
        return seen
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            seen.add((int(parts[0]), int(parts[1])))
    return seen


@pytest.mark.timeout(300)
def test_a_killed_consumer_loses_nothing_and_never_replays_committed_records(
    event_log_factory: EventLogFactory, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    log = event_log_factory()
    topic, group = unique_name("crash"), unique_name("crash-group")
    log.create_topic(topic, PARTITIONS)
    log.produce_many(OutgoingRecord(topic, b"%d" % i, b"order-%d" % (i % 997)) for i in range(TOTAL))
    log.flush()
    ends = log.end_offsets(topic)
    assert sum(ends.values()) == TOTAL
    everything = {(p, o) for p, end in ends.items() for o in range(end)}

    output, errors = tmp_path / "delivered.txt", tmp_path / "consumer.err"
    with errors.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                str(HELPER),
                event_log_factory.selection().model_dump_json(),
                str(event_log_factory.home),
                group,
                topic,
                str(output),
                str(BATCH),
                "0.05",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while sum(v or 0 for v in log.committed(group, topic).values()) < 3 * BATCH:
            assert process.poll() is None, f"the consumer process died: {errors.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the consumer process committed nothing in time"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    at_kill = {p: off or 0 for p, off in log.committed(group, topic).items()}
    assert 3 * BATCH <= sum(at_kill.values()) < TOTAL, "the kill did not land mid-stream"
    before = delivered_before_kill(output)
    for p, committed in at_kill.items():
        missing = {(p, o) for o in range(committed)} - before
        assert not missing, f"partition {p}: committed past records it never processed"

    after: list[tuple[int, int]] = []
    with log.consumer(group, [topic]) as consumer:
        deadline = time.monotonic() + 120
        while not everything <= before | set(after):
            assert time.monotonic() < deadline, "the restarted consumer did not catch up in time"
            after += [(r.partition, r.offset) for r in consumer.poll(max_records=2000, timeout_s=0.5)]

    replayed = [(p, o) for p, o in after if o < at_kill[p]]
    assert not replayed, f"(a) committed records delivered again: {replayed[:5]}"
    first_after: dict[int, int] = {}
    for p, o in after:
        first_after.setdefault(p, o)
    for p in range(PARTITIONS):
        if at_kill[p] < ends[p]:
            resumed = first_after[p]
            assert resumed == at_kill[p], f"(b) partition {p} resumed at {resumed}, not {at_kill[p]}"
    assert before | set(after) == everything, "(c) records were lost"
    assert len(after) == len(set(after)), "the restarted consumer delivered a record twice"
