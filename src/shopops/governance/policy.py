"""The Cedar policy engine: loads ``*.cedar`` files and the schema from a directory, validates
them, answers decisions with reasons, reloads on change and keeps the previous set when a new
one is malformed.

Decisions reuse parsed handles (the policy set, and one entity set per principal), so a decision
costs tens of microseconds instead of re-parsing JSON on every call. Decisions of actions that no
policy conditions on ``context`` are also cached per (policy set, principal, action, resource): for
those the answer cannot depend on anything else (see :func:`context_actions`).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import orjson
from prometheus_client import Counter

from shopops.core.logging import get_logger
from shopops.governance.errors import PolicyLoadError
from shopops.governance.model import Decision, EntityRef, Principal, to_cedar_value

log = get_logger(__name__)

SCHEMA_FILE = "shopops.cedarschema"
_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
_EFFECT = re.compile(r"\b(permit|forbid)\s*\(")
_TOKEN = re.compile(r"`([^`]+)`")
_POLICY_N = re.compile(r"policy(\d+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CONTEXT = re.compile(r"\bcontext\b")
_ACTION_EQ = re.compile(r'\baction\s*==\s*Action::"((?:[^"\\]|\\.)*)"')
_ACTION_LIST = re.compile(r"\baction\s+in\s*\[([^\]]*)\]")
_ACTION_NAME = re.compile(r'Action::"((?:[^"\\]|\\.)*)"')

DECISIONS = Counter(
    "shopops_policy_decisions_total",
    "Policy decisions, by what answered: the engine, or the cache (actions no policy reads context for)",
    ["source"],
)
_FROM_CACHE = DECISIONS.labels("cache")
_EVALUATED = DECISIONS.labels("engine")


@dataclass(frozen=True)
class PolicySource:
    """One policy statement, where it came from."""

    policy_id: str
    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def split_statements(text: str) -> list[tuple[int, str]]:
    """Cut Cedar policy text into statements: ``(first line, text)``, comments and strings aware."""
    out: list[tuple[int, str]] = []
    i, n, line = 0, len(text), 1
    start, start_line = 0, None
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch == '"':
            if start_line is None:
                start_line = line
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif ch == ";":
            out.append((start_line or line, text[start : i + 1]))
            start, start_line = i + 1, None
        elif not ch.isspace() and start_line is None:
            start_line = line
        i += 1
    if start_line is not None:  # text after the last ';': a statement without its end
        out.append((start_line, text[start:]))
    return out


def _error_line(statement: str, first_line: int, message: str) -> int:
    """The line of the token Cedar complains about, when it can be found; else the first line."""
    token = _TOKEN.search(message)
    if token:
        for offset, text in enumerate(_strip_comments(statement).splitlines()):
            if token.group(1) in text:
                return first_line + offset - _leading_blank_lines(statement)
    return first_line


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def _leading_blank_lines(statement: str) -> int:
    count = 0
    for text in _strip_comments(statement).splitlines():
        if text.strip():
            break
        count += 1
    return count


def _without_comments(text: str) -> str:
    """``text`` without its ``//`` comments; a ``//`` inside a string literal stays."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _scope_end(text: str, start: int) -> int:
    """Index of the ``)`` closing a policy's scope that opens before ``start`` (strings skipped)."""
    i, depth = start, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(text)


def context_actions(sources: Sequence[PolicySource]) -> frozenset[str] | None:
    """Actions some policy's conditions read ``context`` for; ``None`` when that may be any action.

    A decision of any other action depends only on the principal (its entity: name, home region,
    roles), the action and the resource, and may be cached. A policy that reads ``context`` and
    names its actions (``action == Action::"a"``, ``action in [...]``) marks those; one whose scope
    takes any action, or an action group, marks them all.
    """
    marked: set[str] = set()
    for src in sources:
        text = _without_comments(src.text)
        # The same text with every string literal's content blanked (positions kept): keywords
        # are looked for outside strings only.
        code = _STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text)
        effect = _EFFECT.search(code)
        if effect is None:
            return None
        end = _scope_end(text, effect.end())
        scope = text[effect.end() : end]
        if not _CONTEXT.search(code[end + 1 :]):
            continue
        single = _ACTION_EQ.search(scope)
        listed = _ACTION_LIST.search(scope)
        if single is not None:
            marked.add(single.group(1))
        elif listed is not None:
            marked.update(_ACTION_NAME.findall(listed.group(1)))
        else:
            return None
    return frozenset(marked)


@dataclass(frozen=True)
class LoadedPolicies:
    """One validated policy set and the handles decisions reuse."""

    policy_set: Any  # cedarpy.PolicySet
    sources: tuple[PolicySource, ...]
    version: str  # digest of every file's content
    signature: tuple[tuple[str, int, int], ...]  # (file, size, mtime_ns) to notice changes
    #: :func:`context_actions` of ``sources``: decisions of the other actions are cacheable.
    context_actions: frozenset[str] | None = None

    def source(self, internal_id: str) -> PolicySource | None:
        match = _POLICY_N.fullmatch(internal_id)
        if match is None:
            return None
        index = int(match.group(1))
        return self.sources[index] if index < len(self.sources) else None


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in sorted([*directory.glob("*.cedar"), directory / SCHEMA_FILE]):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_policies(directory: Path) -> LoadedPolicies:
    """Parse and validate every ``*.cedar`` file of ``directory`` against its schema.

    Raises :class:`PolicyLoadError` naming the file and line of the first problem.
    """
    if not directory.is_dir():
        raise PolicyLoadError(
            f"policy directory {directory} does not exist",
            hint="set governance.policy_dir (SHOPOPS_GOVERNANCE__POLICY_DIR) to the folder holding *.cedar",
        )
    signature = _signature(directory)
    schema_path = directory / SCHEMA_FILE
    if not schema_path.is_file():
        raise PolicyLoadError(
            f"{schema_path} is missing", hint="every policy directory holds its Cedar schema"
        )
    schema_text = schema_path.read_text()
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise PolicyLoadError(
            f"{schema_path}: the schema does not parse: {exc}", hint="fix the schema"
        ) from exc
    digest = hashlib.sha256(schema_text.encode())
    sources: list[PolicySource] = []
    ids: dict[str, str] = {}
    for path in sorted(directory.glob("*.cedar")):
        text = path.read_text()
        digest.update(path.name.encode() + b"\0" + text.encode())
        for first_line, statement in split_statements(text):
            where = f"{path.name}:{first_line}"
            if not statement.rstrip().endswith(";"):
                raise PolicyLoadError(
                    f"{path}:{first_line}: policy does not end with ';'", hint="end every policy with ';'"
                )
            try:
                cedarpy.PolicySet.from_str(statement)
            except ValueError as exc:
                line = _error_line(statement, first_line, str(exc))
                raise PolicyLoadError(
                    f"{path}:{line}: {exc}", hint="fix the policy; the previous policy set stays in force"
                ) from exc
            effect = _EFFECT.search(_strip_comments(statement))
            head = _strip_comments(statement)[: effect.start() if effect else None]
            annotation = _ID_ANNOTATION.search(head)
            policy_id = annotation.group(1) if annotation else where
            if policy_id in ids:
                raise PolicyLoadError(
                    f"{path}:{first_line}: policy id {policy_id!r} is already used at {ids[policy_id]}",
                    hint="give every policy its own @id",
                )
            ids[policy_id] = where
            body = statement.splitlines()[_leading_blank_lines(statement) :]
            sources.append(PolicySource(policy_id, path.name, first_line, "\n".join(body).strip()))
    combined = "\n".join(s.text for s in sources)
    policy_set = cedarpy.PolicySet.from_str(combined)
    if sources:
        result = cedarpy.validate_policies(combined, schema)
        if not result.validation_passed:
            problems = []
            for error in result.errors:
                index = _POLICY_N.fullmatch(error.policy_id or "")
                src = sources[int(index.group(1))] if index else None
                problems.append(f"{directory / src.file}:{src.line}: {error.error}" if src else error.error)
            raise PolicyLoadError(
                "; ".join(problems), hint=f"the policy does not match the schema in {SCHEMA_FILE}"
            )
    return LoadedPolicies(
        policy_set, tuple(sources), digest.hexdigest()[:16], signature, context_actions(sources)
    )


class PolicyEngine:
    """Decisions over the current policy set of a directory; reloads it when its files change."""

    def __init__(
        self,
        directory: Path,
        reload_interval_s: float = 2.0,
        entity_cache_size: int = 4096,
        decision_cache_size: int = 4096,
    ) -> None:
        self.directory = directory
        self.reload_interval_s = reload_interval_s
        self._lock = threading.Lock()
        self._current = load_policies(directory)
        self._checked_at = time.monotonic()
        self._entities: OrderedDict[Principal, Any] = OrderedDict()
        self._entity_cache_size = entity_cache_size
        #: ``(policy version, principal, action, resource) -> Decision`` of context-free actions.
        self._decisions: dict[tuple[str, Principal, str, EntityRef], Decision] = {}
        self._decision_cache_size = decision_cache_size
        #: The last reload that failed: ``(signature, message)``; not retried until the files change.
        self.last_error: str | None = None
        self._failed_signature: tuple[tuple[str, int, int], ...] | None = None

    @property
    def policies(self) -> LoadedPolicies:
        return self._current

    def reload(self) -> LoadedPolicies:
        """Load the directory again. On a malformed file raise and keep the current set."""
        try:
            loaded = load_policies(self.directory)
        except PolicyLoadError as exc:
            with self._lock:
                self.last_error = str(exc)
                self._failed_signature = _signature(self.directory)
            raise
        with self._lock:
            self._current = loaded
            self.last_error, self._failed_signature = None, None
            self._decisions = {}  # keyed by version too: this only frees the old set's entries
        return loaded

    def maybe_reload(self) -> tuple[LoadedPolicies, str | None] | None:
        """Reload when the files changed since the last look (at most every ``reload_interval_s``).

        Returns ``(new set, None)`` after a reload, ``(current set, error)`` when the changed files
        are refused, ``None`` when nothing changed.
        """
        now = time.monotonic()
        if now - self._checked_at < self.reload_interval_s:
            return None
        self._checked_at = now
        signature = _signature(self.directory)
        if signature == self._current.signature or signature == self._failed_signature:
            return None
        try:
            return self.reload(), None
        except PolicyLoadError as exc:
            log.error("policy reload refused; the previous policy set stays in force", error=str(exc))
            return self._current, str(exc)

    def _entities_for(self, principal: Principal) -> Any:
        with self._lock:
            handle = self._entities.get(principal)
            if handle is not None:
                self._entities.move_to_end(principal)
                return handle
        handle = cedarpy.Entities.from_json_str(orjson.dumps([principal.entity()]).decode())
        with self._lock:
            self._entities[principal] = handle
            if len(self._entities) > self._entity_cache_size:
                self._entities.popitem(last=False)
        return handle

    def decide(
        self, principal: Principal, action: str, resource: EntityRef, context: Mapping[str, Any] | None = None
    ) -> Decision:
        """Is ``principal`` allowed ``action`` on ``resource`` in ``context``? Default deny."""
        current = self._current
        key = None
        if current.context_actions is not None and action not in current.context_actions:
            key = (current.version, principal, action, resource)
            cached = self._decisions.get(key)
            if cached is not None:
                _FROM_CACHE.inc()
                return cached
        decision = self._evaluate(current, principal, action, resource, context)
        _EVALUATED.inc()
        if key is not None:
            decisions = self._decisions
            if len(decisions) >= self._decision_cache_size:
                decisions.clear()  # many principals at once: start over rather than track recency
            decisions[key] = decision
        return decision

    def _evaluate(
        self,
        current: LoadedPolicies,
        principal: Principal,
        action: str,
        resource: EntityRef,
        context: Mapping[str, Any] | None,
    ) -> Decision:
        request = {
            "principal": principal.uid,
            "action": {"type": "Action", "id": action},
            "resource": resource.to_cedar(),
            "context": to_cedar_value(context or {}),
        }
        result = cedarpy.is_authorized(request, current.policy_set, self._entities_for(principal))
        reasons = []
        for internal in result.diagnostics.reasons:
            src = current.source(internal)
            reasons.append(src.policy_id if src else internal)
        errors = tuple(_readable_error(e, current) for e in result.diagnostics.errors)
        return Decision(
            allowed=result.allowed,
            principal=principal.label,
            action=action,
            resource=str(resource),
            reasons=tuple(reasons),
            errors=errors,
            policy_version=current.version,
        )

    def candidates(self, action: str) -> list[PolicySource]:
        """Policies whose text names ``action`` (or any action): where to look after a default deny."""
        needle = f'Action::"{action}"'
        out = []
        for src in self._current.sources:
            head = src.text.split("when", 1)[0].split("unless", 1)[0]
            if needle in head or re.search(r"\baction\s*[,)]", head):
                out.append(src)
        return out


def _readable_error(error: str, loaded: LoadedPolicies) -> str:
    def replace(match: re.Match[str]) -> str:
        src = loaded.source(match.group(0))
        return f"{src.policy_id} ({src.where})" if src else match.group(0)

    return _POLICY_N.sub(replace, error)


def default_policy_dir() -> Path:
    """``./policies`` when it exists, else the ``policies/`` folder of the source checkout."""
    here = Path("policies")
    if here.is_dir():
        return here.absolute()
    checkout = Path(__file__).resolve().parents[3] / "policies"
    if checkout.is_dir():
        return checkout
    env = os.environ.get("SHOPOPS_HOME")
    return Path(env) / "policies" if env else here.absolute()
