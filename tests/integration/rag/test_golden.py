"""Retrieval quality on the golden set (tests/golden/rag.yaml) over the repository's knowledge base."""

from __future__ import annotations

from tests.integration.rag.conftest import REPO, Knowledge

from shopops.rag.evaluation import evaluate, load_golden

GOLDEN = REPO / "tests" / "golden" / "rag.yaml"


def test_golden_set_shape() -> None:
    k, questions = load_golden(GOLDEN)
    assert k == 5
    assert len(questions) >= 40
    vietnamese = [q for q in questions if q.lang == "vi"]
    assert len(vietnamese) >= 12
    accented = [q for q in vietnamese if any(ord(c) > 127 for c in q.question)]
    assert accented  # with diacritics ...
    assert len(accented) < len(vietnamese)  # ... and without
    for q in questions:
        for source in q.sources:
            assert (REPO / source).is_file(), f"{q.id}: {source} does not exist"


def test_hybrid_hit_at_5_on_the_golden_set(knowledge: Knowledge) -> None:
    k, questions = load_golden(GOLDEN)
    report = evaluate(knowledge.service, questions, k=k)
    misses = [(m.id, m.retrieved) for m in report.misses]
    print(f"hybrid hit@{k} {report.hit_at_k} MRR {report.mrr} by language {report.by_lang}")
    assert report.hit_at_k >= 0.9, misses
    assert report.by_lang["vi"]["hit_at_k"] >= 0.9, misses


def test_hybrid_beats_dense_alone(knowledge: Knowledge) -> None:
    k, questions = load_golden(GOLDEN)
    hybrid = evaluate(knowledge.service, questions, k=k)
    dense = evaluate(knowledge.service, questions, k=k, mode="dense")
    print(f"dense hit@{k} {dense.hit_at_k} MRR {dense.mrr} by language {dense.by_lang}")
    assert hybrid.hit_at_k >= dense.hit_at_k
    assert hybrid.by_lang["vi"]["hit_at_k"] > dense.by_lang["vi"]["hit_at_k"]
