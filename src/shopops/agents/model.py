"""The pure model of the agents: identifiers, tool outcomes, answers, alerts, triage reports, and the
evaluation measures (hit@k, reciprocal rank, groundedness, percentiles). No I/O here."""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shopops.core.errors import InvalidInputError

#: The agents shopops runs, by the name the API and the CLI use.
AGENT_NAMES: tuple[str, ...] = ("support", "ops-copilot", "triage")

# --- identifiers of the simulated company ------------------------------------------------------

ORDER_ID = re.compile(r"\b([a-z]{2})-o-\d{4,12}\b")
CUSTOMER_ID = re.compile(r"\b([a-z]{2})-c-\d{4,12}\b")
SHIPMENT_ID = re.compile(r"\b([a-z]{2})-s-\d{4,12}\b")
SKU = re.compile(r"\b([A-Z]{2})-SKU-\d{3,8}\b")
_CUSTOMER_FULL = re.compile(r"^[a-z]{2}-c-\d{4,12}$")


def region_of(identifier: str) -> str | None:
    """The region an order, customer, shipment or SKU id belongs to (its prefix), if it has one."""
    for pattern in (ORDER_ID, CUSTOMER_ID, SHIPMENT_ID):
        match = pattern.fullmatch(identifier.strip())
        if match:
            return match.group(1)
    match = SKU.fullmatch(identifier.strip())
    return match.group(1).lower() if match else None


def validate_customer_id(customer_id: str) -> str:
    """A customer id as the simulated shop writes them (``vn-c-0000001``)."""
    value = customer_id.strip()
    if not _CUSTOMER_FULL.match(value):
        raise InvalidInputError(
            f"invalid customer id {customer_id!r}",
            hint="customer ids look like vn-c-0000001 (region, 'c', number)",
        )
    return value


_VI_LETTERS = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.IGNORECASE)
_VI_WORDS = re.compile(
    r"\b(don hang|cua toi|hoan tien|giao hang|bao gio|khi nao|tra hang|van chuyen|thanh toan|"
    r"dang o dau|duoc khong|co the)\b"
)


def detect_lang(text: str) -> str:
    """``vi`` for Vietnamese (its letters, or common words written without diacritics), else ``en``."""
    if _VI_LETTERS.search(text):
        return "vi"
    folded = fold(text)
    return "vi" if _VI_WORDS.search(folded) else "en"


def fold(text: str) -> str:
    """Lower-case, diacritics removed (``đ`` -> ``d``): how free text is compared."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# --- tools -------------------------------------------------------------------------------------


class ToolStatus(StrEnum):
    """How a tool call ended; only ``ok`` and ``not_found`` carry data the agent may use."""

    OK = "ok"
    NOT_FOUND = "not_found"
    #: A policy or a scope rule refused it (another customer's data, another region, a write).
    REFUSED = "refused"
    #: The service behind the tool is not configured or not reachable in this process.
    UNAVAILABLE = "unavailable"
    #: The model asked for a tool this agent does not have, or arguments that do not validate.
    BLOCKED = "blocked"
    ERROR = "error"


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool returns: a status, a plain-language message for the model and the user, data."""

    status: ToolStatus
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, message: str, **data: Any) -> ToolOutcome:
        return cls(ToolStatus.OK, message, data)

    @classmethod
    def unavailable(cls, message: str) -> ToolOutcome:
        return cls(ToolStatus.UNAVAILABLE, message)

    def to_model(self) -> dict[str, Any]:
        """The tool message the model reads: data, never instructions (see the runtime)."""
        return {"status": self.status.value, "message": self.message, "data": dict(self.data)}


@dataclass
class ToolCallRecord:
    """One tool call of a run, as traced, audited and returned to the caller."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    status: ToolStatus
    message: str
    region: str = ""
    seconds: float = 0.0
    #: Policy ids behind a decision, or the rule that refused the call.
    reasons: tuple[str, ...] = ()
    #: The tool's structured result (for the caller to render; the model reads the message).
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "status": self.status.value,
            "message": self.message,
            "region": self.region,
            "seconds": round(self.seconds, 6),
            "reasons": list(self.reasons),
            "data": self.data,
        }


# --- answers -----------------------------------------------------------------------------------


class Outcome(StrEnum):
    ANSWERED = "answered"
    #: The agent declined: another customer's data, a tool it may not use, a question out of scope.
    REFUSED = "refused"
    #: Nothing relevant was found; the agent says it does not know.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Citation:
    """A passage an answer cites as ``[n]``."""

    index: int
    source: str
    title: str = ""
    heading: str = ""
    chunk_id: str = ""
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source": self.source,
            "title": self.title,
            "heading": self.heading,
            "chunk_id": self.chunk_id,
        }


@dataclass
class AgentAnswer:
    """The result of one run of an agent."""

    agent: str
    question: str
    answer: str
    outcome: Outcome
    citations: list[Citation]
    tool_calls: list[ToolCallRecord]
    #: Sources of the passages retrieved for the question, best first (what hit@k is scored on).
    retrieved: list[str]
    trace_id: str
    backend: str
    model: str
    lang: str = "en"
    customer_id: str | None = None
    #: Plain statements the user must see (a service that is not configured, a refused call).
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Every passage the model was given, numbered as the answer cites them (kept out of the JSON).
    passages: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "question": self.question,
            "answer": self.answer,
            "outcome": self.outcome.value,
            "citations": [c.to_dict() for c in self.citations],
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "retrieved": self.retrieved,
            "trace_id": self.trace_id,
            "backend": self.backend,
            "model": self.model,
            "lang": self.lang,
            "customer_id": self.customer_id,
            "notices": self.notices,
            "seconds": round(self.seconds, 4),
        }


_REFUSAL_CUES = (
    "i don't know",
    "i do not know",
    "i cannot help",
    "i can't help",
    "i can only help",
    "i am not able to",
    "i'm not able to",
    "i could not find",
    "tôi không biết",
    "tôi không thể",
    "tôi chỉ có thể",
)


def sounds_like_refusal(text: str) -> bool:
    """Does an answer open by declining ("I don't know: …")? A policy quoted in an answer may say
    "can only" or "cannot" without the answer being a refusal, so only the opening counts."""
    opening = text.strip().lower()[:80]
    return any(cue in opening for cue in _REFUSAL_CUES)


# --- alerts and triage -------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager sends it to a webhook receiver."""

    name: str
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    fingerprint: str

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def region(self) -> str:
        """The region an alert is about: a ``region`` label, else the prefix of a subject/topic."""
        if self.labels.get("region"):
            return self.labels["region"]
        for key in ("subject", "topic"):
            value = self.labels.get(key, "")
            if len(value) > 3 and value[2] == "." and value[:2].isalpha():
                return value[:2]
        return ""

    @property
    def triage_id(self) -> str:
        """One id per alert firing: the same alert delivered twice is triaged once."""
        digest = hashlib.sha256(f"{self.fingerprint}\0{self.starts_at}".encode()).hexdigest()
        return f"tri-{digest[:16]}"

    def describe(self) -> str:
        summary = self.annotations.get("summary") or self.name
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if k != "alertname")
        return f"{summary} ({labels})" if labels else summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "fingerprint": self.fingerprint,
        }


def _text_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"alert {what} must be an object of strings", hint="see Alertmanager's webhook"
        )
    return {str(k): str(v) for k, v in value.items()}


def parse_alerts(payload: Any) -> list[Alert]:
    """Alerts from an Alertmanager webhook body (``{"alerts": [...]}``), one alert, or a list.

    An alert needs ``labels.alertname``; a missing fingerprint is derived from the sorted labels,
    as Alertmanager derives its own.
    """
    if isinstance(payload, Mapping) and "alerts" in payload:
        items = payload["alerts"]
    elif isinstance(payload, Mapping):
        items = [payload]
    else:
        items = payload
    if not isinstance(items, list) or not items:
        raise InvalidInputError(
            "no alert in the request", hint='send Alertmanager\'s webhook body: {"alerts": [{"labels": ...}]}'
        )
    alerts: list[Alert] = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"alert {position} is not an object")
        labels = _text_map(item.get("labels"), "labels")
        name = labels.get("alertname", "").strip()
        if not name:
            raise InvalidInputError(
                f"alert {position} has no labels.alertname", hint="every alert names its rule in alertname"
            )
        fingerprint = str(item.get("fingerprint") or "")
        if not fingerprint:
            text = "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
            fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        alerts.append(
            Alert(
                name=name,
                status=str(item.get("status") or "firing"),
                labels=labels,
                annotations=_text_map(item.get("annotations"), "annotations"),
                starts_at=str(item.get("startsAt") or item.get("starts_at") or ""),
                fingerprint=fingerprint,
            )
        )
    return alerts


@dataclass
class TriageReport:
    """What the triage bot writes for one alert: summary, evidence, runbook steps, sources."""

    triage_id: str
    alert: Alert
    summary: str
    evidence: list[dict[str, Any]]
    runbook_steps: list[str]
    sources: list[str]
    trace_id: str
    written_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    #: ``written`` now, ``duplicate`` when the same firing was triaged before (nothing written),
    #: ``skipped`` for a resolved alert.
    status: str = "written"
    #: The run behind a report written now (kept out of the JSON).
    answer: AgentAnswer | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "triage_id": self.triage_id,
            "alert": self.alert.to_dict(),
            "summary": self.summary,
            "evidence": self.evidence,
            "runbook_steps": self.runbook_steps,
            "sources": self.sources,
            "trace_id": self.trace_id,
            "written_at": self.written_at,
            "status": self.status,
        }


_NUMBERED = re.compile(r"^(\d+)[.)]\s+(.+)$")
_BULLET = re.compile(r"^[-*]\s+(.+)$")


def runbook_steps(text: str, limit: int = 8, *, numbered_only: bool = False) -> list[str]:
    """The steps of a runbook passage, in order: its top-level numbered items (their wrapped lines
    joined, sub-items folded in), else (unless ``numbered_only``) its bullets."""
    numbered: list[str] = []
    bullets: list[str] = []
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            current = None
            continue
        top = not raw[:1].isspace()
        number = _NUMBERED.match(line) if top else None
        bullet = _BULLET.match(line) if top else None
        if number:
            numbered.append(number.group(2))
            current = numbered
        elif bullet and not numbered:
            bullets.append(bullet.group(1))
            current = bullets
        elif current is not None and current:
            item = _BULLET.match(line)
            current[-1] = f"{current[-1]} {item.group(1) if item else line}"
        else:
            current = None
    steps = numbered or ([] if numbered_only else bullets)
    return [re.sub(r"\s+", " ", step).strip() for step in steps[:limit]]


# --- evaluation measures -----------------------------------------------------------------------


def source_matches(source: str, acceptable: Iterable[str]) -> bool:
    """Does ``source`` (a repo-relative path) match one of ``acceptable`` (paths or globs)?

    Patterns may leave out the ``docs/knowledge/`` prefix and the ``.md`` suffix.
    """
    short = source.removeprefix("docs/knowledge/")
    for pattern in acceptable:
        for candidate in (pattern, f"{pattern}.md", f"{pattern}*"):
            if fnmatch.fnmatchcase(source, candidate) or fnmatch.fnmatchcase(short, candidate):
                return True
    return False


def first_hit(ranked: Sequence[str], acceptable: Sequence[str]) -> int | None:
    """1-based rank of the first acceptable source in ``ranked``, if any."""
    for rank, source in enumerate(ranked, start=1):
        if source_matches(source, acceptable):
            return rank
    return None


def hit_at_k(ranked: Sequence[str], acceptable: Sequence[str], k: int = 5) -> bool:
    rank = first_hit(ranked[:k], acceptable)
    return rank is not None


def reciprocal_rank(ranked: Sequence[str], acceptable: Sequence[str]) -> float:
    rank = first_hit(ranked, acceptable)
    return 0.0 if rank is None else 1.0 / rank


_CITE = re.compile(r"\[(\d{1,2})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?!\[\d)|\n+")
_WORD = re.compile(r"[\w.%/-]+", re.UNICODE)
_STOP_WORDS = (
    "a an and are as at be by can do does for from has have how i if in is it its may my of on or our "
    "the their this to was we what when where which who will with you your yes no not "
    "la va cua cho co khong duoc mot nhung cac voi tu trong den khi nao"
)
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> set[str]:
    """Folded words of ``text`` that carry meaning (stop words and 1-letter tokens dropped)."""
    words = {w.strip(".-/") for w in _WORD.findall(fold(text))}
    return {w for w in words if len(w) > 1 and w not in _STOP}


_SOURCES_BLOCK = re.compile(r"\n\s*(?:Sources|Nguồn)\s*:\s*\n((?:[ \t]*\[\d+\][^\n]*(?:\n|$))+)\s*$")
_SOURCE_LINE = re.compile(r"^\s*\[(\d+)\]\s+(.+?)(?:\s+—\s+(.+?))?\s*$")
_INTRO = re.compile(r"^(.*)\[(\d{1,2})\]\s*:\s*$")


def split_sources(text: str) -> tuple[str, dict[int, tuple[str, str]]]:
    """``(body, {n: (source, heading)})``: an answer and the ``Sources:`` list it ends with, if any."""
    match = _SOURCES_BLOCK.search(text)
    if match is None:
        return text, {}
    listed: dict[int, tuple[str, str]] = {}
    for line in match.group(1).splitlines():
        found = _SOURCE_LINE.match(line)
        if found:
            listed[int(found.group(1))] = (found.group(2).strip(), (found.group(3) or "").strip())
    return text[: match.start()].rstrip(), listed


def claims(answer: str) -> list[tuple[str, list[int]]]:
    """The statements of ``answer`` that cite something: ``(text without markers, [n, ...])``.

    A sentence carries its own ``[n]``; the items of a list introduced by a line ending in ``[n]:``
    ("order_status returned [1]:") carry that ``n``. The closing sources list is not a claim.
    """
    body, _ = split_sources(answer)
    out: list[tuple[str, list[int]]] = []
    inherited: list[int] = []
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped:
            inherited = []
            continue
        intro = _INTRO.match(stripped)
        if intro is not None:
            inherited = [int(intro.group(2))]
            continue
        if inherited and stripped.startswith(("- ", "* ")):
            cited = [int(n) for n in _CITE.findall(stripped)] or inherited
            text = _CITE.sub("", stripped[2:]).strip()
            if content_words(text):
                out.append((text, cited))
            continue
        inherited = []
        for sentence in _SENTENCE.split(stripped):
            cited = [int(n) for n in _CITE.findall(sentence)]
            text = _CITE.sub("", sentence).strip()
            if cited and content_words(text):
                out.append((text, cited))
    return out


def supported(claim: str, passages: Iterable[str], threshold: float = 0.6) -> bool:
    """Is ``claim`` backed by the cited passages: are most of its content words in them?"""
    words = content_words(claim)
    if not words:
        return True
    evidence: set[str] = set()
    for text in passages:
        evidence |= content_words(text)
    return len(words & evidence) / len(words) >= threshold


def groundedness(answer: str, cited_text: Mapping[int, str]) -> float | None:
    """Share of an answer's citing sentences supported by the passages they cite (``None``: none cite)."""
    found = claims(answer)
    if not found:
        return None
    good = sum(1 for text, cited in found if supported(text, [cited_text.get(n, "") for n in cited]))
    return good / len(found)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
