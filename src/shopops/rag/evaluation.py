"""Retrieval quality against a golden set: hit@k and mean reciprocal rank, per language.

A golden set is YAML (``tests/golden/rag.yaml``)::

    version: 1
    k: 5
    questions:
      - id: en-return-window-sg
        question: How many days do I have to return an item in Singapore?
        lang: en
        sources: [docs/knowledge/policies/refunds-and-returns.md]

A question is a hit when one of its top ``k`` passages comes from one of its ``sources``; its
reciprocal rank is 1 / the rank of the first such passage (0 when none is in the top ``k``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.rag.service import RagService


@dataclass(frozen=True)
class GoldenQuestion:
    id: str
    question: str
    lang: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class QuestionResult:
    id: str
    question: str
    lang: str
    #: 1-based rank of the first acceptable passage, None if none is in the top k.
    rank: int | None
    retrieved: tuple[str, ...]
    expected: tuple[str, ...]
    seconds: float


@dataclass
class EvalReport:
    k: int
    mode: str
    questions: int
    hit_at_k: float
    mrr: float
    by_lang: dict[str, dict[str, float]]
    latency_p50_ms: float
    latency_p95_ms: float
    results: list[QuestionResult] = field(default_factory=list)

    @property
    def misses(self) -> list[QuestionResult]:
        return [r for r in self.results if r.rank is None]

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["misses"] = [asdict(r) for r in self.misses]
        del body["results"]
        return body


def default_golden_path() -> Path:
    """``./tests/golden/rag.yaml``, else the one of the source checkout."""
    here = Path("tests/golden/rag.yaml")
    if here.is_file():
        return here.absolute()
    return Path(__file__).resolve().parents[3] / "tests" / "golden" / "rag.yaml"


def load_golden(path: Path) -> tuple[int, list[GoldenQuestion]]:
    """The golden set's ``k`` and questions; a malformed file is refused naming the entry."""
    if not path.is_file():
        raise NotFoundError(f"golden set {path} does not exist", hint="give the path with --golden")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {exc}", hint="fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise InvalidInputError(f"{path} has no 'questions' list", hint="see tests/golden/rag.yaml")
    k = data.get("k", 5)
    if not isinstance(k, int) or not 1 <= k <= 50:
        raise InvalidInputError(f"{path}: k must be an integer between 1 and 50, got {k!r}")
    questions: list[GoldenQuestion] = []
    seen: set[str] = set()
    for number, entry in enumerate(data["questions"], start=1):
        where = f"{path}: question {number}"
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{where} is not a mapping")
        qid, text, sources = entry.get("id"), entry.get("question"), entry.get("sources")
        if not isinstance(qid, str) or not qid or qid in seen:
            raise InvalidInputError(f"{where}: 'id' must be a unique non-empty string, got {qid!r}")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{where} ({qid}): 'question' is missing")
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
            raise InvalidInputError(f"{where} ({qid}): 'sources' must be a non-empty list of paths")
        seen.add(qid)
        questions.append(GoldenQuestion(qid, text, str(entry.get("lang") or "en"), tuple(sources)))
    return k, questions


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(
    service: RagService, questions: list[GoldenQuestion], *, k: int = 5, mode: str = "hybrid"
) -> EvalReport:
    """Ask every question and score where its acceptable sources rank."""
    results: list[QuestionResult] = []
    for q in questions:
        started = time.perf_counter()
        passages = service.search(q.question, k, mode=mode)
        seconds = time.perf_counter() - started
        retrieved = tuple(p.source for p in passages)
        rank = next((i for i, source in enumerate(retrieved, start=1) if source in q.sources), None)
        results.append(QuestionResult(q.id, q.question, q.lang, rank, retrieved, q.sources, seconds))

    def score(group: list[QuestionResult]) -> tuple[float, float]:
        if not group:
            return 0.0, 0.0
        hits = sum(1 for r in group if r.rank is not None) / len(group)
        mrr = statistics.fmean(1 / r.rank if r.rank else 0.0 for r in group)
        return hits, mrr

    hit, mrr = score(results)
    by_lang: dict[str, dict[str, float]] = {}
    for lang in sorted({r.lang for r in results}):
        group = [r for r in results if r.lang == lang]
        lang_hit, lang_mrr = score(group)
        by_lang[lang] = {"questions": len(group), "hit_at_k": round(lang_hit, 4), "mrr": round(lang_mrr, 4)}
    latencies = [r.seconds * 1000 for r in results]
    return EvalReport(
        k=k,
        mode=mode,
        questions=len(results),
        hit_at_k=round(hit, 4),
        mrr=round(mrr, 4),
        by_lang=by_lang,
        latency_p50_ms=round(_percentile(latencies, 0.5), 1),
        latency_p95_ms=round(_percentile(latencies, 0.95), 1),
        results=results,
    )
