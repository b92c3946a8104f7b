"""Data contracts and their check results, as pure data (no I/O, no engine).

A :class:`Contract` is what shopops reads out of one Open Data Contract Standard (ODCS v3) file:
the dataset it governs (``<database>.<table>``, from ``schema[0].physicalName``), its columns with
their types, keys and rules, dataset-level quality rules, the SLAs and the owner. The compiler
(:mod:`shopops.quality.compile`) turns it into :class:`CheckSpec` s; the engine runs them and
reports :class:`CheckOutcome` s, gathered in a :class:`RunRecord`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

#: Logical types of ODCS v3 properties that shopops checks.
LOGICAL_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "timestamp", "date")

#: The comparison operators of ODCS quality rules.
OPERATORS: tuple[str, ...] = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)

#: Library metrics of ODCS v3 quality rules.
METRICS: tuple[str, ...] = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")

#: SLA properties read as the freshness SLA (ODCS calls it ``latency``).
FRESHNESS_SLA: tuple[str, ...] = ("latency", "freshness")

#: Time units of SLA values, in seconds.
UNIT_SECONDS: dict[str, float] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
    "y": 365 * 86400,
    "yr": 365 * 86400,
    "year": 365 * 86400,
    "years": 365 * 86400,
}

Severity = Literal["error", "warning", "info"]
Level = Literal["row", "dataset", "schema"]
Mode = Literal["batch", "table"]
CheckKind = Literal[
    "type",
    "required",
    "unique",
    "primary_key",
    "accepted_values",
    "pattern",
    "range",
    "length",
    "missing",
    "references",
    "sql",
    "row_count",
    "freshness",
]


@dataclass(frozen=True, slots=True)
class Threshold:
    """An ODCS comparison (``mustBe: 0``, ``mustBeBetween: [1, 10]``...) of an observed number."""

    operator: str = "mustBe"
    value: Any = 0

    def accepts(self, observed: float) -> bool:
        """Whether ``observed`` satisfies the comparison."""
        v = self.value
        if self.operator == "mustBe":
            return math.isclose(observed, float(v))
        if self.operator == "mustNotBe":
            return not math.isclose(observed, float(v))
        if self.operator == "mustBeGreaterThan":
            return observed > float(v)
        if self.operator == "mustBeGreaterOrEqualTo":
            return observed >= float(v)
        if self.operator == "mustBeLessThan":
            return observed < float(v)
        if self.operator == "mustBeLessOrEqualTo":
            return observed <= float(v)
        low, high = float(v[0]), float(v[1])
        inside = low <= observed <= high
        return inside if self.operator == "mustBeBetween" else not inside

    @property
    def zero_tolerance(self) -> bool:
        """True when a single failing row already breaks the rule (then failing rows are rejected)."""
        return self.accepts(0) and not self.accepts(1)

    def describe(self) -> str:
        words = {
            "mustBe": "=",
            "mustNotBe": "!=",
            "mustBeGreaterThan": ">",
            "mustBeGreaterOrEqualTo": ">=",
            "mustBeLessThan": "<",
            "mustBeLessOrEqualTo": "<=",
        }
        if self.operator in words:
            return f"{words[self.operator]} {_num(self.value)}"
        low, high = self.value
        prefix = "" if self.operator == "mustBeBetween" else "not "
        return f"{prefix}between {_num(low)} and {_num(high)}"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


NO_FAILING_ROWS = Threshold("mustBe", 0)


@dataclass(frozen=True, slots=True)
class QualityRule:
    """One ``quality`` entry of a property or of the schema object."""

    path: str
    type: str = "library"
    name: str | None = None
    metric: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    threshold: Threshold | None = None
    unit: str = "rows"
    query: str | None = None
    severity: Severity = "error"
    description: str | None = None
    dimension: str | None = None
    #: The property the rule belongs to (``None``: a schema-level rule).
    column: str | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """A foreign key of a property: its values must exist in ``target_object.target_column``."""

    path: str
    target_object: str
    target_column: str


@dataclass(frozen=True, slots=True)
class Property:
    """One column of the contract's schema object."""

    name: str
    path: str
    logical_type: str | None = None
    physical_type: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    primary_key_position: int = -1
    classification: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    quality: tuple[QualityRule, ...] = ()
    references: tuple[Reference, ...] = ()

    @property
    def pii(self) -> bool:
        return "pii" in self.tags


@dataclass(frozen=True, slots=True)
class Sla:
    """One ``slaProperties`` entry."""

    path: str
    #: The SLA property (``latency``, ``retention``...).
    name: str
    value: Any
    unit: str | None = None
    element: str | None = None

    @property
    def seconds(self) -> float | None:
        """The value as a duration, when its unit is a time unit."""
        factor = UNIT_SECONDS.get((self.unit or "").lower())
        if factor is None or isinstance(self.value, bool) or not isinstance(self.value, int | float):
            return None
        return float(self.value) * factor


@dataclass(frozen=True, slots=True)
class Contract:
    """A data contract as shopops uses it."""

    id: str
    version: str
    dataset: str
    object_name: str
    source: str
    name: str | None = None
    status: str | None = None
    api_version: str = "v3.1.0"
    domain: str | None = None
    owner: str | None = None
    description: str | None = None
    properties: tuple[Property, ...] = ()
    quality: tuple[QualityRule, ...] = ()
    slas: tuple[Sla, ...] = ()
    custom: dict[str, Any] = field(default_factory=dict)
    #: The parsed document itself, as the file holds it (served by the API).
    document: dict[str, Any] = field(default_factory=dict)
    #: Line and column of each YAML path of the file (``schema[0].properties[2]`` -> (31, 9)).
    positions: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def position(self, path: str) -> tuple[int | None, int | None]:
        """Where ``path`` (or its closest ancestor) is in the file."""
        while path:
            if path in self.positions:
                return self.positions[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return (1, 1)

    @property
    def columns(self) -> dict[str, Property]:
        return {p.name: p for p in self.properties}

    @property
    def primary_key(self) -> tuple[str, ...]:
        keys = [p for p in self.properties if p.primary_key]
        keys.sort(key=lambda p: (p.primary_key_position if p.primary_key_position > 0 else 1_000, p.name))
        return tuple(p.name for p in keys)

    @property
    def freshness(self) -> Sla | None:
        return next((s for s in self.slas if s.name in FRESHNESS_SLA), None)

    @property
    def retention(self) -> Sla | None:
        return next((s for s in self.slas if s.name == "retention"), None)

    def summary(self) -> dict[str, Any]:
        """What a listing shows of a contract."""
        fresh = self.freshness
        return {
            "dataset": self.dataset,
            "id": self.id,
            "version": self.version,
            "status": self.status,
            "owner": self.owner,
            "columns": len(self.properties),
            "primary_key": list(self.primary_key),
            "pii_columns": [p.name for p in self.properties if p.pii],
            "freshness": f"{fresh.value} {fresh.unit}" if fresh is not None else None,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One executable check compiled from a contract."""

    name: str
    kind: CheckKind
    level: Level
    columns: tuple[str, ...] = ()
    threshold: Threshold = NO_FAILING_ROWS
    unit: str = "rows"
    severity: Severity = "error"
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def rejects_rows(self) -> bool:
        """Whether rows failing this check are quarantined by a micro-batch check."""
        return self.level == "row" and self.severity == "error" and self.threshold.zero_tolerance


@dataclass(frozen=True, slots=True)
class FailingRow:
    """A row that failed a check: its key (column -> value) and why."""

    key: dict[str, Any]
    reason: str


@dataclass(slots=True)
class CheckOutcome:
    """The result of one check on one table or batch."""

    check: str
    kind: str
    level: str
    columns: list[str]
    severity: str
    passed: bool
    rows_checked: int
    rows_failed: int
    #: The number compared with the threshold (failing rows, a percentage, a row count, an age).
    observed: float | None
    expected: str
    message: str
    samples: list[FailingRow] = field(default_factory=list)
    #: ``True`` when the check could not run on this input (e.g. a dataset check on a micro-batch).
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "level": self.level,
            "columns": self.columns,
            "severity": self.severity,
            "outcome": "skipped" if self.skipped else ("passed" if self.passed else "failed"),
            "rows_checked": self.rows_checked,
            "rows_failed": self.rows_failed,
            "observed": self.observed,
            "expected": self.expected,
            "message": self.message,
        }


@dataclass(slots=True)
class RunRecord:
    """One check run of one dataset: every check's outcome and the failing rows found."""

    run_id: str
    dataset: str
    mode: Mode
    source: str
    contract_id: str
    contract_version: str
    started_at_ms: int
    finished_at_ms: int
    rows_checked: int
    #: Rows failing at least one row-level check.
    rows_failed: int
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "failed" if any(not c.passed and c.severity == "error" for c in self.checks) else "passed"

    @property
    def checks_failed(self) -> int:
        return sum(1 for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "mode": self.mode,
            "source": self.source,
            "contract_id": self.contract_id,
            "contract_version": self.contract_version,
            "started_at_ms": self.started_at_ms,
            "finished_at_ms": self.finished_at_ms,
            "rows_checked": self.rows_checked,
            "rows_failed": self.rows_failed,
            "outcome": self.outcome,
            "checks_total": len(self.checks),
            "checks_failed": self.checks_failed,
        }


@dataclass(frozen=True, slots=True)
class LintIssue:
    """A problem found in a contract file: where (file, YAML path, line, column) and what."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        at = f" {self.path}:" if self.path else ""
        return f"{where}: {self.severity}:{at} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
        }
