"""Personal data in prompts, found and redacted before a prompt leaves for an external upstream.

What counts as personal data is governance's knowledge: the columns ``policies/data.toml`` tags
``pii`` or ``secret``. A JSON object in the conversation (a tool's result, a pasted row) is masked
with governance's own :func:`~shopops.governance.model.mask_row` — tagged ``pii`` fields become
``***``, ``secret`` fields are removed — and the values found in those fields (a customer's name,
email, phone) are then redacted wherever else they occur in the conversation. Free text is also
scanned for emails, phone numbers and payment-card numbers (Luhn-checked).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shopops.governance.model import ColumnTag, DatasetTags, mask_row
from shopops.llm.extraction import EMAIL, PHONE, is_phone
from shopops.llm.model import ChatCompletionRequest, ChatMessage

_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def placeholder(kind: str) -> str:
    return f"[redacted {kind}]"


def column_tags(datasets: Mapping[str, DatasetTags]) -> dict[str, ColumnTag]:
    """Tagged column names over every dataset; a name tagged ``secret`` anywhere counts as secret."""
    out: dict[str, ColumnTag] = {}
    for tags in datasets.values():
        for column, tag in tags.columns.items():
            if out.get(column) is not ColumnTag.SECRET:
                out[column] = tag
    return out


@dataclass
class Findings:
    """Personal data found in a request: how many of each kind, and the tagged values seen."""

    kinds: Counter[str] = field(default_factory=Counter)
    values: dict[str, str] = field(default_factory=dict)  # value -> kind

    def __bool__(self) -> bool:
        return bool(self.kinds)


class Redactor:
    """Finds and redacts personal data in chat requests; ``tags`` is read on every call (it reloads)."""

    def __init__(self, tags: Callable[[], Mapping[str, DatasetTags]] | None = None) -> None:
        self._tags = tags or dict

    def _columns(self) -> dict[str, ColumnTag]:
        return column_tags(self._tags())

    def scan(self, request: ChatCompletionRequest) -> Findings:
        """The personal data in ``request`` (nothing changed)."""
        columns = self._columns()
        found = Findings()
        for message in request.messages:
            for text in _texts(message):
                self._scan_json(text, columns, found)
        for message in request.messages:
            for text in _texts(message):
                self._scan_text(text, found)
        return found

    def redact(self, request: ChatCompletionRequest) -> tuple[ChatCompletionRequest, Findings]:
        """A copy of ``request`` with its personal data redacted, and what was found."""
        columns = self._columns()
        findings = self.scan(request)
        if not findings:
            return request, findings
        messages = [self._redact_message(m, columns, findings) for m in request.messages]
        return request.model_copy(update={"messages": messages}), findings

    # --- scanning ------------------------------------------------------------------------------

    def _scan_json(self, text: str, columns: Mapping[str, ColumnTag], found: Findings) -> None:
        doc = _as_json(text)
        if doc is None:
            return

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    tag = columns.get(str(key))
                    if tag is not None and value not in (None, ""):
                        found.kinds[str(key)] += 1
                        if isinstance(value, str | int) and len(str(value)) >= 3:
                            found.values[str(value)] = str(key)
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(doc)

    def _scan_text(self, text: str, found: Findings) -> None:
        for value, kind in found.values.items():
            if value.lower() in text.lower() and _as_json(text) is None:
                found.kinds[kind] += 1
        for match in EMAIL.finditer(text):
            if match.group(0) not in found.values:
                found.kinds["email"] += 1
        cards = [m for m in _CARD.finditer(text) if _is_card(m.group(0))]
        found.kinds["card"] += len(cards)
        for match in PHONE.finditer(text):
            in_card = any(c.start() <= match.start() < c.end() for c in cards)
            if is_phone(match.group(0)) and not in_card and match.group(0).strip() not in found.values:
                found.kinds["phone"] += 1
        for kind in [k for k, n in found.kinds.items() if n == 0]:
            del found.kinds[kind]

    # --- redacting -----------------------------------------------------------------------------

    def _redact_message(
        self, message: ChatMessage, columns: Mapping[str, ColumnTag], findings: Findings
    ) -> ChatMessage:
        update: dict[str, Any] = {}
        if isinstance(message.content, str):
            update["content"] = self._redact_text(message.content, columns, findings)
        elif isinstance(message.content, list):
            update["content"] = [
                p.model_copy(update={"text": self._redact_text(p.text, columns, findings)})
                if p.type == "text" and p.text
                else p
                for p in message.content
            ]
        if message.tool_calls:
            update["tool_calls"] = [
                c.model_copy(
                    update={
                        "function": c.function.model_copy(
                            update={"arguments": self._redact_text(c.function.arguments, columns, findings)}
                        )
                    }
                )
                for c in message.tool_calls
            ]
        return message.model_copy(update=update)

    def _redact_text(self, text: str, columns: Mapping[str, ColumnTag], findings: Findings) -> str:
        doc = _as_json(text)
        if doc is not None:
            return orjson.dumps(self._mask_json(doc, columns, findings)).decode()
        for value in sorted(findings.values, key=len, reverse=True):
            text = re.sub(re.escape(value), placeholder(findings.values[value]), text, flags=re.I)
        text = EMAIL.sub(placeholder("email"), text)
        text = _CARD.sub(lambda m: placeholder("card") if _is_card(m.group(0)) else m.group(0), text)
        return PHONE.sub(lambda m: placeholder("phone") if is_phone(m.group(0)) else m.group(0), text)

    def _mask_json(self, node: Any, columns: Mapping[str, ColumnTag], findings: Findings) -> Any:
        if isinstance(node, dict):
            # governance's own masking: pii -> ***, secret -> removed
            masked = mask_row(node, {}, columns)
            return {
                k: v if str(k) in columns else self._mask_json(v, columns, findings)
                for k, v in masked.items()
            }
        if isinstance(node, list):
            return [self._mask_json(v, columns, findings) for v in node]
        if isinstance(node, str):
            return self._redact_text(node, columns, findings) if node else node
        return node


def _is_card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _texts(message: ChatMessage) -> list[str]:
    out = [message.text] if message.text else []
    out += [c.function.arguments for c in message.tool_calls or ()]
    return out


def _as_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
