"""The in-memory sparse index: BM25 with Qdrant's IDF, filters, deletes (checked against brute force)."""

from __future__ import annotations

import math

import numpy as np

from shopops.rag.backends.lexical import LexicalIndex


def _brute_force(docs: dict[str, dict[int, float]], query: dict[int, float]) -> dict[str, float]:
    n = len(docs)
    scores: dict[str, float] = {}
    for pid, vector in docs.items():
        shared = set(vector) & set(query)
        if not shared:
            continue
        total = 0.0
        for term in shared:
            df = sum(1 for v in docs.values() if term in v)
            total += query[term] * math.log((n - df + 0.5) / (df + 0.5) + 1) * vector[term]
        scores[pid] = total
    return scores


def test_scores_equal_brute_force_bm25_with_idf() -> None:
    rng = np.random.default_rng(7)
    docs: dict[str, dict[int, float]] = {}
    index = LexicalIndex()
    for i in range(200):
        terms = sorted(set(rng.integers(0, 60, size=12).tolist()))
        vector = {int(t): float(rng.uniform(0.2, 2.0)) for t in terms}
        docs[f"p{i}"] = vector
        index.put(f"p{i}", list(vector), list(vector.values()), {"source": f"s{i % 5}", "lang": "en"})
    query = {3: 1.0, 17: 0.5, 42: 3.0}
    expected = _brute_force(docs, query)
    got = index.search(list(query), list(query.values()), limit=1000)
    assert {pid for pid, _ in got} == set(expected)
    for pid, score in got:
        assert math.isclose(score, expected[pid], rel_tol=1e-9)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_filters_and_deletes() -> None:
    index = LexicalIndex()
    index.put("a", [1, 2], [1.0, 1.0], {"source": "x.md", "lang": "en", "audience": "customer"})
    index.put("b", [1], [1.0], {"source": "x.md", "lang": "vi", "audience": "customer"})
    index.put("c", [1], [1.0], {"source": "y.md", "lang": "en", "audience": "internal"})
    assert {p for p, _ in index.search([1], [1.0], 10)} == {"a", "b", "c"}
    assert [p for p, _ in index.search([1], [1.0], 10, {"lang": "vi"})] == ["b"]
    assert [p for p, _ in index.search([1], [1.0], 10, {"audience": "internal"})] == ["c"]
    assert index.search([99], [1.0], 10) == []
    index.delete_source("x.md", keep={"a"})
    assert {p for p, _ in index.search([1], [1.0], 10)} == {"a", "c"}
    index.delete_ids(["a"])
    assert [p for p, _ in index.search([1], [1.0], 10)] == ["c"]
    index.clear()
    assert index.search([1], [1.0], 10) == []
    assert len(index) == 0
