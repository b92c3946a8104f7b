"""Settling the start-up heap: garbage is collected first, then what is alive is frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shopops.core.heap import settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session keeps the collector's usual behaviour


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_garbage_is_collected_and_live_objects_are_frozen(unfrozen: None) -> None:
    kept = Node()
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    frozen = settle_heap("test")
    assert gone() is None  # collected before the freeze, not kept forever
    # Frozen temporaries of other threads may die right after the freeze (they leave the permanent
    # generation as they are freed), so the count is not compared exactly.
    assert frozen > before
    assert gc.get_freeze_count() > before
    assert not any(o is kept for o in gc.get_objects())  # out of the generations the collector scans
    assert kept.me is kept
