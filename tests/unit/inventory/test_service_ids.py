"""Reservation ids and refusal event ids, made by the service."""

from __future__ import annotations

import re

from shopops.inventory.model import validate_reservation_id
from shopops.inventory.service import new_reservation_ids

T0 = 1_750_000_000_000


def test_reservation_ids_sort_by_time_and_never_repeat() -> None:
    made = [new_reservation_ids(T0 + i) for i in range(1_000)]
    ids = [rid for rid, _ in made]
    refusals = [eid for _, eid in made]
    assert all(re.fullmatch(r"r[0-9a-f]{28}", rid) for rid in ids)
    assert all(validate_reservation_id(rid) == rid for rid in ids)
    assert ids[0].startswith(f"r{T0:012x}")
    assert sorted(ids) == ids
    assert all(re.fullmatch(r"[0-9a-f]{32}", eid) for eid in refusals)
    assert len(set(ids)) == len(ids)
    assert len(set(refusals)) == len(refusals)
    # The two halves come from one random read, not from each other.
    assert not any(eid.startswith(rid[13:]) for rid, eid in made)
