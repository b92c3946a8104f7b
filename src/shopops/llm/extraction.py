"""Reading structured arguments out of a request's text, per a tool's JSON-Schema parameters.

Pure and deterministic. What it recognises:

- ids of the platform's entities by their shapes (``vn-o-000000123`` an order, ``VN-SKU-00042`` a
  SKU, ``vn-c-0001234`` a customer, ``vn-wh-01`` a warehouse...), matched to parameters by their
  names or descriptions (``order_id``, ``sku``...), or a parameter's own ``pattern``;
- region codes and names (``vn``, ``Vietnam``, ``Việt Nam``), also read off an id's prefix;
- dates (``2026-01-05``, ``5/1/2026`` day first, ``5 January 2026``, ``today``, ``hôm qua``...),
  the first and last of them going to ``from``/``to``-like parameters;
- numbers next to a word of the parameter's name (``3 units`` → ``quantity``, ``top 5`` →
  ``limit``), within ``minimum``/``maximum``;
- ``enum`` values, by exact or close match of a phrase of the text;
- booleans named in the text (``include revoked`` → ``include_revoked: true``, negations false);
- emails, phone numbers, currencies, quoted strings, and the whole question for free-text
  parameters such as ``query`` or ``question``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shopops.domain.regions import REGIONS

# --- words --------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)

STOPWORDS = frozenset(
    """a an the of to for in on at by with from and or is are was were be been being it its this that
    these those what which who whom whose when where why how do does did done can could would should
    will shall may might must i me my we our you your he she they them their his her please tell show
    give get find let about as if than then there here any some all into up out over just also not no
    yes so such via per much many more most other own same very have has had having am want need know
    ok okay hi hello thanks thank vui lòng cho tôi của là và các những được có không gì nào ở đâu bao
    nhiêu này đó với biết hãy giúp mình bạn""".split()  # noqa: SIM905 - a word list reads better as text
)

#: Vietnamese phrases of the shop's vocabulary → the English words tools are described with.
VI_GLOSSARY: dict[str, tuple[str, ...]] = {
    "đơn hàng": ("order",),
    "đơn": ("order",),
    "thanh toán": ("payment", "pay"),
    "hoàn tiền": ("refund",),
    "giao hàng": ("shipment", "delivery", "shipping"),
    "vận chuyển": ("shipment", "shipping"),
    "vận đơn": ("shipment", "tracking"),
    "tồn kho": ("stock", "inventory"),
    "hàng tồn": ("stock", "inventory"),
    "kho": ("warehouse", "stock"),
    "khách hàng": ("customer",),
    "sản phẩm": ("product", "sku"),
    "giá": ("price",),
    "giữ hàng": ("reserve", "reservation", "hold"),
    "đặt giữ": ("reserve", "reservation"),
    "đối soát": ("reconciliation", "reconcile"),
    "gian lận": ("fraud",),
    "trạng thái": ("status",),
    "tìm": ("search", "find"),
    "hủy": ("cancel",),
    "tài liệu": ("docs", "documentation"),
    "hướng dẫn": ("runbook", "guide", "docs"),
    "chính sách": ("policy",),
    "đổi trả": ("return", "refund"),
    "trả hàng": ("return",),
}


def stem(word: str) -> str:
    """A crude English stem: enough to match ``orders``/``order``, ``shipped``/``ship``."""
    w = word.lower()
    for suffix, keep in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ied", "y"),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + keep
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "ls":  # shipp -> ship, stopp -> stop
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """Stems of the meaningful words of ``text``; Vietnamese shop terms add their English words."""
    lowered = text.lower()
    out = {stem(w) for w in words(lowered) if w not in STOPWORDS and not w.isdigit()}
    for phrase, english in VI_GLOSSARY.items():
        if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", lowered):
            out.update(stem(e) for e in english)
    return out


def identifier_words(name: str) -> list[str]:
    """``getOrderStatus`` / ``get_order_status`` / ``get-order-status`` → ``[get, order, status]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w.lower() for w in re.split(r"[\s_\-.]+", spaced) if w]


_VI_CHARS = frozenset("ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủũứừửữựỳỵỷỹĩ")


def detect_lang(text: str) -> str:
    """``vi`` when the text carries Vietnamese letters or tone marks, else ``en``."""
    letters = [c for c in text.lower() if c.isalpha()]
    if not letters:
        return "en"
    marked = sum(1 for c in letters if c in _VI_CHARS)
    return "vi" if marked >= 2 or (marked and marked / len(letters) > 0.02) else "en"


# --- ids of the platform's entities ----------------------------------------------------------

_R = r"[a-z]{2}"
#: Shapes of the ids the platform's systems issue (see the simulator's generator).
ENTITY_PATTERNS: dict[str, re.Pattern[str]] = {
    "order": re.compile(rf"(?<![\w-]){_R}-o-\d{{9}}(?![\w-])", re.I),
    "payment": re.compile(rf"(?<![\w-]){_R}-pay-(?:{_R})?\d{{9}}(?![\w-])", re.I),
    "customer": re.compile(rf"(?<![\w-]){_R}-c-\d{{7}}(?![\w-])", re.I),
    "product": re.compile(rf"(?<![\w-]){_R}-p-\d{{5}}(?![\w-])", re.I),
    "sku": re.compile(rf"(?<![\w-]){_R}-sku-\d{{5}}(?![\w-])", re.I),
    "warehouse": re.compile(rf"(?<![\w-]){_R}-wh-\d{{2}}(?![\w-])", re.I),
    "shipment": re.compile(rf"(?<![\w-]){_R}-s-\d{{9}}(?![\w-])", re.I),
    "journal": re.compile(rf"(?<![\w-]){_R}-j-\d{{9}}(?![\w-])", re.I),
    "checkout": re.compile(rf"(?<![\w-]){_R}-co-\d{{9}}(?![\w-])", re.I),
    "cart": re.compile(rf"(?<![\w-]){_R}-cart-\d{{9}}(?![\w-])", re.I),
    "reservation": re.compile(r"(?<![\w-])res[_-][0-9a-z]{6,}(?![\w-])", re.I),
}
#: Words naming an entity in parameter names and descriptions.
ENTITY_WORDS: dict[str, str] = {
    "order": "order",
    "payment": "payment",
    "pay": "payment",
    "customer": "customer",
    "cust": "customer",
    "product": "product",
    "sku": "sku",
    "warehouse": "warehouse",
    "wh": "warehouse",
    "shipment": "shipment",
    "shipping": "shipment",
    "tracking": "shipment",
    "journal": "journal",
    "ledger": "journal",
    "checkout": "checkout",
    "cart": "cart",
    "reservation": "reservation",
    "hold": "reservation",
}
_UPPER_IDS = frozenset({"sku"})


def normalise_id(entity: str, value: str) -> str:
    return value.upper() if entity in _UPPER_IDS else value.lower()


def find_ids(text: str) -> dict[str, list[tuple[int, int, str]]]:
    """Every entity id in ``text``: entity → ``[(start, end, id)]`` in order of appearance."""
    out: dict[str, list[tuple[int, int, str]]] = {}
    for entity, pattern in ENTITY_PATTERNS.items():
        found = [(m.start(), m.end(), normalise_id(entity, m.group(0))) for m in pattern.finditer(text)]
        if found:
            out[entity] = found
    return out


def entity_of(name: str, description: str = "") -> str | None:
    """The entity a parameter holds the id of, from its name, else its description."""
    for source in (identifier_words(name), [stem(w) for w in words(description)]):
        for word in source:
            entity = ENTITY_WORDS.get(word) or ENTITY_WORDS.get(stem(word))
            if entity:
                return entity
    return None


# --- regions, currencies, contact data --------------------------------------------------------

REGION_NAMES: dict[str, str] = {
    **{r.name.lower(): code for code, r in REGIONS.items()},
    "việt nam": "vn",
    "viet nam": "vn",
    "thái lan": "th",
    "thai lan": "th",
    "phi-líp-pin": "ph",
    "philippine": "ph",
}
CURRENCIES = frozenset({r.currency for r in REGIONS.values()} | {"USD", "EUR"})
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
PHONE = re.compile(r"(?<![\w-])(?:\+|00)?\d[\d\s().-]{7,17}\d(?![\w-])")


def is_phone(candidate: str) -> bool:
    """Digit runs that look like a phone number, not an amount or a date."""
    digits = re.sub(r"\D", "", candidate)
    if not 9 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", candidate.strip()):
        return False
    separated = bool(re.search(r"[\s().-]", candidate.strip()))
    return candidate.startswith(("+", "00", "0")) or separated


def find_regions(text: str, allowed: Iterable[str] | None = None) -> list[tuple[int, str]]:
    """Regions named in ``text`` (codes as words, names, id prefixes): ``[(position, code)]``."""
    allowed_set = {a.lower() for a in allowed} if allowed is not None else set(REGIONS)
    lowered = text.lower()
    found: list[tuple[int, str]] = []
    for match in re.finditer(r"(?<![\w-])([a-z]{2})(?![\w-])", lowered):
        if match.group(1) in REGIONS and match.group(1) in allowed_set:
            # Two-letter words of English ("id", "my", "th") only count when written in capitals.
            original = text[match.start() : match.end()]
            if match.group(1) not in ("id", "my", "ph", "th") or original.isupper():
                found.append((match.start(), match.group(1)))
    for name, code in REGION_NAMES.items():
        for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", lowered):
            if code in allowed_set:
                found.append((match.start(), code))
    for matches in find_ids(text).values():
        for start, _, value in matches:
            code = value[:2].lower()
            if code in REGIONS and code in allowed_set:
                found.append((start + 10_000, code))  # after any region named explicitly
    return sorted(found)


# --- dates ------------------------------------------------------------------------------------

_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for m in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ISO = re.compile(
    r"(?<![\w-])(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?(?![\w])"
)
_DMY = re.compile(r"(?<![\w/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\w/])")
_D_MONTH_Y = re.compile(rf"(?<!\w)(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_RE})\.?,?\s+(\d{{4}})(?!\w)", re.I)
_MONTH_D_Y = re.compile(rf"(?<!\w)({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\w)", re.I)
_VI_DATE = re.compile(r"ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})(?:\s*(?:năm|,)\s*(\d{4}))?", re.I)
_RELATIVE = {
    "today": 0,
    "hôm nay": 0,
    "yesterday": -1,
    "hôm qua": -1,
    "tomorrow": 1,
    "ngày mai": 1,
}


@dataclass(frozen=True)
class FoundDate:
    start: int
    end: int
    day: date
    #: The ISO text with its time when one was written (``2026-01-05T10:00:00Z``).
    datetime_text: str | None = None


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def find_dates(text: str, today: date) -> list[FoundDate]:
    """Dates written in ``text``, in order of appearance (overlapping forms counted once)."""
    found: list[FoundDate] = []
    for m in _ISO.finditer(text):
        day = _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if day:
            found.append(FoundDate(m.start(), m.end(), day, m.group(0) if m.group(4) else None))
    for m in _DMY.finditer(text):
        day = _safe_date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        if day:
            found.append(FoundDate(m.start(), m.end(), day))
    for m in _D_MONTH_Y.finditer(text):
        day = _safe_date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
        if day:
            found.append(FoundDate(m.start(), m.end(), day))
    for m in _MONTH_D_Y.finditer(text):
        day = _safe_date(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
        if day:
            found.append(FoundDate(m.start(), m.end(), day))
    for m in _VI_DATE.finditer(text):
        day = _safe_date(int(m.group(3) or today.year), int(m.group(2)), int(m.group(1)))
        if day:
            found.append(FoundDate(m.start(), m.end(), day))
    lowered = text.lower()
    for phrase, offset in _RELATIVE.items():
        for m in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", lowered):
            found.append(FoundDate(m.start(), m.end(), today + timedelta(days=offset)))
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    out: list[FoundDate] = []
    for item in found:
        if out and item.start < out[-1].end:
            continue
        out.append(item)
    return out


# --- numbers ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.,/-])-?\d+(?:[.,]\d+)*(?![\w/-])")
_NUMBER_CUES: dict[str, tuple[str, ...]] = {
    "quantity": ("qty", "unit", "piece", "item", "cái", "chiếc"),
    "qty": ("quantity", "unit", "piece", "item"),
    "limit": ("top", "first", "last", "max", "most", "up"),
    "k": ("top", "first"),
    "n": ("top", "first", "last"),
    "count": ("top", "first", "last"),
    "day": ("ngày",),
    "hour": ("giờ", "hr"),
    "minute": ("min", "phút"),
    "amount": ("total", "price", "cost", "sum"),
    "price": ("cost", "amount"),
    "ttl": ("second", "minute", "min", "sec"),
}


def parse_number(text: str) -> float | None:
    t = text.strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", t):
        return float(t.replace(",", ""))
    if re.fullmatch(r"-?\d{1,3}(?:\.\d{3}){2,}", t):  # 1.250.000 (Vietnamese thousands)
        return float(t.replace(".", ""))
    if re.fullmatch(r"-?\d+(?:\.\d+)?", t):
        return float(t)
    if re.fullmatch(r"-?\d+,\d+", t):  # 12,5 (decimal comma)
        return float(t.replace(",", "."))
    return None


@dataclass(frozen=True)
class FoundNumber:
    start: int
    end: int
    value: float
    word_index: int


# --- extraction -------------------------------------------------------------------------------

FREE_TEXT_NAMES = frozenset(
    {
        "query",
        "question",
        "q",
        "text",
        "message",
        "prompt",
        "search",
        "topic",
        "keywords",
        "keyword",
        "content",
        "input",
        "request",
        "utterance",
        "ask",
        "search_query",
        "user_query",
    }
)
_NOTE_NAMES = frozenset({"reason", "note", "notes", "comment", "description", "subject", "title", "body"})
_BOOL_GENERIC = frozenset(
    {"include", "is", "has", "with", "only", "show", "use", "enable", "flag", "should", "allow"}
)
_NEGATIONS = frozenset(
    {"no", "not", "without", "exclude", "excluding", "don't", "dont", "never", "không", "đừng"}
)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']{2,})'")


@dataclass
class Extraction:
    """Arguments found for a tool, the required parameters not found, and what was matched how."""

    arguments: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    matched: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing


def _schema_type(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for key in ("anyOf", "oneOf"):
            for option in spec.get(key) or ():
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    return _schema_type(option)
        if "enum" in spec:
            values = spec["enum"]
            return "integer" if values and all(isinstance(v, int) for v in values) else "string"
        return "string"
    return str(kind)


def _enum_of(spec: Mapping[str, Any]) -> list[Any] | None:
    if isinstance(spec.get("enum"), list):
        return list(spec["enum"])
    if "const" in spec:
        return [spec["const"]]
    for key in ("anyOf", "oneOf"):
        for option in spec.get(key) or ():
            if isinstance(option, Mapping) and isinstance(option.get("enum"), list):
                return list(option["enum"])
    return None


def _usable_pattern(pattern: str) -> re.Pattern[str] | None:
    body = pattern.removeprefix("^").removesuffix("$")
    try:
        compiled = re.compile(body)
    except re.error:
        return None
    return None if compiled.fullmatch("") else compiled


class _Text:
    """The request text with what has already been claimed by an argument."""

    def __init__(self, text: str, today: date) -> None:
        self.text = text
        self.lowered = text.lower()
        self.ids = find_ids(text)
        self.dates = find_dates(text, today)
        self.tokens = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
        taken = [(s, e) for found in self.ids.values() for s, e, _ in found] + [
            (d.start, d.end) for d in self.dates
        ]
        self.numbers: list[FoundNumber] = []
        for m in _NUMBER.finditer(text):
            if any(s <= m.start() < e for s, e in taken):
                continue
            value = parse_number(m.group(0))
            if value is None:
                continue
            index = sum(1 for s, _, _ in self.tokens if s < m.start())
            self.numbers.append(FoundNumber(m.start(), m.end(), value, index))
        self.used_numbers: set[int] = set()
        self.used_dates: set[int] = set()

    def token_positions(self, cue_words: set[str]) -> list[int]:
        return [i for i, (_, _, w) in enumerate(self.tokens) if w in cue_words or stem(w) in cue_words]

    def negated_before(self, index: int) -> bool:
        return any(self.tokens[j][2] in _NEGATIONS for j in range(max(0, index - 3), index))


def _ok_number(value: float, spec: Mapping[str, Any], integer: bool) -> bool:
    if integer and value != int(value):
        return False
    if "minimum" in spec and value < spec["minimum"]:
        return False
    if "maximum" in spec and value > spec["maximum"]:
        return False
    if "exclusiveMinimum" in spec and value <= spec["exclusiveMinimum"]:
        return False
    return not ("exclusiveMaximum" in spec and value >= spec["exclusiveMaximum"])


def _match_enum(values: list[Any], text: _Text) -> tuple[Any, str] | None:
    best: tuple[float, int, Any] | None = None
    phrases: list[str] = []
    toks = [w for _, _, w in text.tokens]
    for n in (1, 2, 3):
        phrases += [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    region_codes = set(REGIONS)
    if values and all(isinstance(v, str) and v.lower() in region_codes for v in values):
        regions = find_regions(text.text, [str(v) for v in values])
        if regions:
            code = regions[0][1]
            return next(v for v in values if str(v).lower() == code), "region"
    for order, value in enumerate(values):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            for number in text.numbers:
                if number.value == value:
                    return value, "enum-number"
            continue
        variants = {str(value).lower(), re.sub(r"[_\-]+", " ", str(value).lower())}
        for variant in variants:
            if re.search(rf"(?<![\w-]){re.escape(variant)}(?![\w-])", text.lowered):
                score = 2.0 + len(variant) / 100
            else:
                score = 0.0
                for phrase in phrases:
                    if (
                        len(variant) >= 4
                        and (phrase.startswith(variant) or variant.startswith(phrase))
                        and (min(len(phrase), len(variant)) >= 4)
                    ):
                        score = max(score, 0.9)
                    ratio = difflib.SequenceMatcher(None, variant, phrase).ratio()
                    if ratio >= 0.85:
                        score = max(score, ratio)
            if score and (best is None or (score, -order) > (best[0], -best[1])):
                best = (score, order, value)
    return (best[2], "enum") if best else None


def _extract_value(
    name: str, spec: Mapping[str, Any], text: _Text, question: str, date_slot: str | None
) -> tuple[Any, str] | None:
    kind = _schema_type(spec)
    description = str(spec.get("description", ""))
    name_words = identifier_words(name)
    enum = _enum_of(spec)
    if kind == "array":
        raw_items = spec.get("items")
        items: Mapping[str, Any] = raw_items if isinstance(raw_items, Mapping) else {}
        values = _extract_all(
            name, {**items, "description": description or items.get("description", "")}, text
        )
        return (values, "list") if values else None
    if enum is not None:
        return _match_enum(enum, text)
    if kind in ("integer", "number"):
        return _extract_number(name_words, description, spec, text, kind == "integer")
    if kind == "boolean":
        return _extract_bool(name_words, text)
    if kind != "string":
        return None
    pattern = _usable_pattern(str(spec["pattern"])) if "pattern" in spec else None
    if pattern is not None:
        m = pattern.search(text.text) or re.compile(pattern.pattern, re.I).search(text.text)
        return (m.group(0), "pattern") if m else None
    fmt = str(spec.get("format", ""))
    if fmt in ("date", "date-time") or date_slot is not None:
        return _extract_date(text, date_slot or "first", fmt)
    if fmt == "email" or "email" in name_words:
        m = EMAIL.search(text.text)
        return (m.group(0), "email") if m else None
    if "phone" in name_words or "mobile" in name_words:
        for m in PHONE.finditer(text.text):
            if is_phone(m.group(0)):
                return m.group(0).strip(), "phone"
        return None
    if set(name_words) & {"region", "country", "market"}:
        regions = find_regions(text.text)
        return (regions[0][1], "region") if regions else None
    if "currency" in name_words:
        for token in re.findall(r"(?<![A-Za-z])[A-Za-z]{3}(?![A-Za-z])", text.text):
            if token.upper() in CURRENCIES:
                return token.upper(), "currency"
        return None
    entity = entity_of(name, description)
    if entity is not None and (
        set(name_words) & {"id", "code", "number", "no", "ref"} or entity in name_words
    ):
        found = text.ids.get(entity)
        return (found[0][2], f"id:{entity}") if found else None
    if name.lower() in FREE_TEXT_NAMES or set(name_words) & FREE_TEXT_NAMES:
        return question.strip(), "text"
    if name.lower() in _NOTE_NAMES or set(name_words) & _NOTE_NAMES:
        quoted = _QUOTED.search(text.text)
        return (next(g for g in quoted.groups() if g), "quoted") if quoted else None
    if entity is not None:
        found = text.ids.get(entity)
        return (found[0][2], f"id:{entity}") if found else None
    return None


def _extract_all(name: str, spec: Mapping[str, Any], text: _Text) -> list[Any]:
    enum = _enum_of(spec)
    if enum is not None:
        lowered = text.lowered
        return [
            v
            for v in enum
            if isinstance(v, str) and re.search(rf"(?<![\w-]){re.escape(v.lower())}(?![\w-])", lowered)
        ]
    pattern = _usable_pattern(str(spec["pattern"])) if "pattern" in spec else None
    if pattern is not None:
        return list(dict.fromkeys(m.group(0) for m in pattern.finditer(text.text)))
    words_ = identifier_words(name)
    if set(words_) & {"region", "regions", "country", "countries", "market", "markets"}:
        return list(dict.fromkeys(code for _, code in find_regions(text.text)))
    entity = entity_of(name, str(spec.get("description", "")))
    if entity is not None:
        return list(dict.fromkeys(v for _, _, v in text.ids.get(entity, [])))
    return []


def _extract_number(
    name_words: list[str], description: str, spec: Mapping[str, Any], text: _Text, integer: bool
) -> tuple[Any, str] | None:
    cues = {stem(w) for w in name_words} | set(name_words)
    for w in list(cues):
        cues.update(_NUMBER_CUES.get(w, ()))
    positions = text.token_positions(cues)
    best: tuple[int, FoundNumber] | None = None
    for number in text.numbers:
        if number.start in text.used_numbers or not _ok_number(number.value, spec, integer):
            continue
        for pos in positions:
            distance = abs(number.word_index - pos)
            if distance <= 3 and (best is None or distance < best[0]):
                best = (distance, number)
    if best is None:
        return None
    text.used_numbers.add(best[1].start)
    value = best[1].value
    return (int(value) if integer else value), "number"


def _unclaimed_number(spec: Mapping[str, Any], text: _Text, integer: bool) -> Any:
    free = [
        n for n in text.numbers if n.start not in text.used_numbers and _ok_number(n.value, spec, integer)
    ]
    if len(free) != 1:
        return None
    text.used_numbers.add(free[0].start)
    return int(free[0].value) if integer else free[0].value


def _extract_bool(name_words: list[str], text: _Text) -> tuple[Any, str] | None:
    significant = [w for w in name_words if w not in _BOOL_GENERIC] or name_words
    cue = {w for w in significant} | {stem(w) for w in significant}
    positions = text.token_positions(cue)
    if not positions:
        return None
    return (not text.negated_before(positions[0])), "flag"


def _extract_date(text: _Text, slot: str, fmt: str) -> tuple[Any, str] | None:
    free = [d for d in text.dates if d.start not in text.used_dates]
    if not free:
        return None
    chosen = free[-1] if slot == "last" and len(free) > 1 else free[0]
    text.used_dates.add(chosen.start)
    if fmt == "date-time":
        return chosen.datetime_text or f"{chosen.day.isoformat()}T00:00:00", "date"
    return chosen.day.isoformat(), "date"


_FROM_WORDS = frozenset({"from", "start", "since", "begin", "after", "first"})
_TO_WORDS = frozenset({"to", "end", "until", "till", "before", "last"})


def _date_slot(name: str, spec: Mapping[str, Any]) -> str | None:
    words_ = set(identifier_words(name))
    is_date = str(spec.get("format", "")) in ("date", "date-time") or bool(
        words_ & {"date", "day", "since", "until"}
    )
    if not is_date and not (
        words_ & (_FROM_WORDS | _TO_WORDS) and _schema_type(spec) == "string" and len(words_) <= 2
    ):
        return None
    if words_ & _TO_WORDS:
        return "last"
    return "first"


def extract_arguments(parameters: Mapping[str, Any], question: str, *, today: date) -> Extraction:
    """Arguments for a tool with JSON-Schema ``parameters`` read from ``question``.

    Only what the text states is filled in: absent optional parameters are left to the tool's
    defaults, absent required ones are listed in :attr:`Extraction.missing`.
    """
    properties = parameters.get("properties") or {}
    required = [r for r in parameters.get("required") or [] if r in properties]
    text = _Text(question, today)
    result = Extraction()
    # Dates bound to "from"-like parameters first, so that "to" takes the last date written.
    order = sorted(properties, key=lambda n: 0 if _date_slot(n, properties[n]) == "first" else 1)
    for name in order:
        spec = properties[name] if isinstance(properties[name], Mapping) else {}
        found = _extract_value(name, spec, text, question, _date_slot(name, spec))
        if found is None and _schema_type(spec) in ("integer", "number") and _enum_of(spec) is None:
            numeric = [n for n in properties if _schema_type(properties[n]) in ("integer", "number")]
            if len(numeric) == 1:
                value = _unclaimed_number(spec, text, _schema_type(spec) == "integer")
                found = (value, "number") if value is not None else None
        if found is not None and found[0] is not None:
            result.arguments[name] = found[0]
            result.matched[name] = found[1]
    # A single free string parameter still empty takes a quoted string, if there is one.
    quoted = _QUOTED.search(question)
    if quoted:
        empty = [
            n
            for n in properties
            if n not in result.arguments
            and _schema_type(properties[n]) == "string"
            and _enum_of(properties[n]) is None
            and "pattern" not in properties[n]
            and not properties[n].get("format")
        ]
        if len(empty) == 1:
            result.arguments[empty[0]] = next(g for g in quoted.groups() if g)
            result.matched[empty[0]] = "quoted"
    result.arguments = {n: result.arguments[n] for n in properties if n in result.arguments}
    result.missing = [r for r in required if r not in result.arguments]
    return result
