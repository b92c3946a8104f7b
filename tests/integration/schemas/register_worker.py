"""A registry process for the concurrency test: registers schemas as soon as the start file exists.

    python register_worker.py SELECTION_JSON HOME WORKER COUNT START_FILE

Prints one JSON list of [subject, schema text, id, version] for everything it registered.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from shopops.core.registry import BackendSelection
from shopops.schemas.backends import open_schema_store
from shopops.schemas.model import SchemaType
from shopops.schemas.service import SchemaRegistry

COMMON = '{"type":"record","name":"Common","fields":[{"name":"id","type":"string"}]}'


def own(worker: int, i: int) -> str:
    # Every version has one field with a default: any two of them are compatible both ways.
    field = {"name": f"f_{worker}_{i}", "type": "int", "default": 0}
    return orjson.dumps({"type": "record", "name": "Shared", "fields": [field]}).decode()


def main() -> None:
    selection = BackendSelection.model_validate(orjson.loads(sys.argv[1]))
    home, worker, count, start = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    registry = SchemaRegistry(open_schema_store(selection, home))
    deadline = time.monotonic() + 60
    while not start.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    done: list[list[object]] = []
    for i in range(count):
        for subject, text in (("shared", own(worker, i)), (f"own-{worker}", COMMON), ("common", COMMON)):
            reg = registry.register(subject, SchemaType.AVRO, text)
            done.append([subject, text, reg.id, reg.version])
    registry.close()
    sys.stdout.write(orjson.dumps(done).decode())


if __name__ == "__main__":
    main()
