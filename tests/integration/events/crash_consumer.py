"""A consumer process for ``test_consumer_crash.py``; the test kills it with SIGKILL mid-stream.

For each polled batch it appends ``partition offset`` lines for every record to the output file,
fsyncs them, and only then commits: what was committed was processed before the commit.

    python crash_consumer.py SELECTION_JSON HOME GROUP TOPIC OUTPUT BATCH PAUSE_S
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log


def main(argv: list[str]) -> None:
    selection_json, home, group, topic, output, batch, pause = argv
    log = open_event_log(BackendSelection.model_validate_json(selection_json), home=Path(home))
    consumer = log.consumer(group, [topic])
    with Path(output).open("a", encoding="ascii") as out:
        while True:
            records = consumer.poll(max_records=int(batch), timeout_s=1.0)
            if not records:
                continue
            out.write("".join(f"{r.partition} {r.offset}\n" for r in records))
            out.flush()
            os.fsync(out.fileno())
            consumer.commit()
            # Slow enough that the test can kill it half-way through the topic.
            time.sleep(float(pause))


if __name__ == "__main__":
    main(sys.argv[1:])
