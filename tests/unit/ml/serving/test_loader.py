"""Why a model's features and the served features differ, in words."""

from __future__ import annotations

from shopops.ml.serving.loader import mismatch


def test_mismatch_reasons() -> None:
    assert mismatch(["a", "b"], ["a", "b"]) is None
    assert mismatch(["a", "b", "c"], ["a", "b"]) == "lacks c"
    assert mismatch(["a"], ["a", "z"]) == "expects z which the features do not provide"
    assert mismatch(["a", "b"], ["b", "a"]) == "has the same features in another order"
