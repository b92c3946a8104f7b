"""Several registry processes on one store register at the same moment: ids and versions stay sound."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
from tests.integration.schemas.conftest import StoreFactory

WORKER = Path(__file__).with_name("register_worker.py")
PROCESSES = 4
EACH = 12


def test_concurrent_processes_share_ids_and_number_versions_without_gaps(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    store_factory().close()  # create the tables first, as a deployed registry would have
    selection = orjson.dumps(store_factory.selection().model_dump()).decode()
    start = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), selection, str(tmp_path), str(w), str(EACH), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    start.touch()
    results: list[list[object]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results += orjson.loads(out)

    ids_by_text: dict[str, set[int]] = defaultdict(set)
    for _, text, schema_id, _ in results:
        ids_by_text[str(text)].add(int(schema_id))  # type: ignore[call-overload]
    # The same schema has one id whichever process registered it, in whatever subject.
    assert all(len(ids) == 1 for ids in ids_by_text.values())
    # Different schemas have different ids.
    assert len({next(iter(ids)) for ids in ids_by_text.values()}) == len(ids_by_text)

    shared = sorted((int(v), str(t)) for s, t, _, v in results if s == "shared")  # type: ignore[call-overload]
    assert [v for v, _ in shared] == list(range(1, PROCESSES * EACH + 1)), (
        "versions without gaps or duplicates"
    )
    assert len({t for _, t in shared}) == PROCESSES * EACH
    assert {int(v) for s, _, _, v in results if s == "common"} == {1}  # type: ignore[call-overload]

    store = store_factory()
    assert [v.version for v in store.versions("shared")] == list(range(1, PROCESSES * EACH + 1))
    assert len(store.versions("common")) == 1
