"""Is a contract compatible with the schema registered for its dataset's topics?

A contract describes what its dataset's CDC rows hold, so it must not promise more than the
source sends. Against the latest registered version of every ``<region>.<dataset>`` subject
(``schemas.drift.subject_template``), these are errors:

- a contract column the registered schema does not have;
- a type that does not match (``logicalType``, and an integer narrower than the registered one);
- ``required: true`` on a column the registered schema declares optional (nullable): the rows
  without a value would all be rejected.

A registered column the contract does not describe is a warning; a dataset with no registered
subject yet is a warning too (nothing to compare with).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shopops.domain.regions import REGIONS
from shopops.quality.model import Contract, LintIssue

_TIMESTAMP_NAMES = {
    "io.debezium.time.MicroTimestamp",
    "io.debezium.time.Timestamp",
    "io.debezium.time.NanoTimestamp",
    "org.apache.kafka.connect.data.Timestamp",
}
_DATE_NAMES = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "int": 32, "long": 64}


@dataclass(frozen=True, slots=True)
class RegisteredField:
    """A column of a registered row schema, in the contract's terms."""

    name: str
    logical: str
    physical: str | None
    optional: bool


def _json_fields(doc: dict[str, Any]) -> dict[str, RegisteredField]:
    required = set(doc.get("required") or [])
    out: dict[str, RegisteredField] = {}
    for name, prop in (doc.get("properties") or {}).items():
        optional = name not in required
        inner: Any = prop
        alternatives = prop.get("oneOf") or prop.get("anyOf") if isinstance(prop, dict) else None
        if isinstance(alternatives, list):
            rest = [a for a in alternatives if a != {"type": "null"}]
            optional = optional or len(rest) < len(alternatives)
            inner = rest[0] if len(rest) == 1 else {}
        if not isinstance(inner, dict):
            inner = {}
        kind = inner.get("type")
        if isinstance(kind, list):
            optional = optional or "null" in kind
            kind = next((k for k in kind if k != "null"), None)
        connect_type = inner.get("connect.type")
        connect_name = inner.get("connect.name")
        if connect_name in _TIMESTAMP_NAMES:
            logical = "timestamp"
        elif connect_name in _DATE_NAMES:
            logical = "date"
        elif kind == "integer":
            logical = "integer"
        elif kind == "number":
            logical = "number"
        elif kind == "boolean":
            logical = "boolean"
        elif kind == "string":
            logical = "string"
        else:
            logical = str(kind or "any")
        out[name] = RegisteredField(name, logical, connect_type, optional)
    return out


def _avro_fields(doc: dict[str, Any]) -> dict[str, RegisteredField]:
    out: dict[str, RegisteredField] = {}
    for f in doc.get("fields") or []:
        t: Any = f.get("type")
        optional = False
        if isinstance(t, list):
            optional = "null" in t
            rest = [x for x in t if x != "null"]
            t = rest[0] if len(rest) == 1 else "union"
        logical_type = t.get("logicalType") if isinstance(t, dict) else None
        base = t.get("type") if isinstance(t, dict) else t
        if logical_type in ("timestamp-micros", "timestamp-millis", "local-timestamp-micros"):
            logical = "timestamp"
        elif logical_type == "date":
            logical = "date"
        elif base in ("int", "long"):
            logical = "integer"
        elif base in ("float", "double"):
            logical = "number"
        elif base == "boolean":
            logical = "boolean"
        elif base in ("string", "bytes"):
            logical = "string"
        else:
            logical = str(base)
        out[str(f.get("name"))] = RegisteredField(
            str(f.get("name")), logical, base if isinstance(base, str) else None, optional
        )
    return out


def registered_fields(schema_type: str, text: str) -> dict[str, RegisteredField] | None:
    """The columns of a registered row schema (JSON Schema or Avro record); ``None`` if not one."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if schema_type.upper() == "AVRO":
        return _avro_fields(doc) if doc.get("type") == "record" else None
    return _json_fields(doc) if isinstance(doc.get("properties"), dict) else None


def compare(
    contract: Contract, subject: str, version: int, fields: dict[str, RegisteredField]
) -> list[LintIssue]:
    """What in ``contract`` the registered ``fields`` do not support."""
    issues: list[LintIssue] = []
    where = f"{subject} (version {version})"

    def issue(path: str, message: str, severity: str = "error") -> None:
        line, column = contract.position(path)
        issues.append(
            LintIssue(
                contract.source, path, message, line, column, "warning" if severity == "warning" else "error"
            )
        )

    for p in contract.properties:
        reg = fields.get(p.name)
        if reg is None:
            issue(
                p.path,
                f"column {p.name} is not in the schema registered for {where}: the source does not send it",
            )
            continue
        if p.logical_type is not None and reg.logical != p.logical_type:
            shown = (
                f"{reg.logical} ({reg.physical})"
                if reg.physical and reg.physical != reg.logical
                else reg.logical
            )
            issue(
                f"{p.path}.logicalType",
                f"logicalType {p.logical_type} does not match the registered type {shown} "
                f"of {p.name} in {where}",
            )
        elif p.logical_type == "integer" and p.physical_type and reg.physical:
            mine, theirs = _INT_BITS.get(p.physical_type.lower()), _INT_BITS.get(reg.physical.lower())
            if mine is not None and theirs is not None and mine < theirs:
                issue(
                    f"{p.path}.physicalType",
                    f"physicalType {p.physical_type} is narrower than the registered {reg.physical} "
                    f"of {p.name} in {where}",
                )
        if p.required and reg.optional:
            issue(
                f"{p.path}.required" if f"{p.path}.required" in contract.positions else p.path,
                f"required: true, but {where} declares {p.name} optional (nullable): "
                "rows without it would all be rejected",
            )
    described = set(contract.columns)
    missing = sorted(n for n, f in fields.items() if n not in described and not f.optional)
    if missing:
        issue(
            "schema[0].properties",
            f"{where} has column(s) the contract does not describe: {', '.join(missing)}",
            "warning",
        )
    return issues


def check_registry(
    contracts: Sequence[Contract], client: Any, subject_template: str = "{topic}-value"
) -> list[LintIssue]:
    """Compare every contract with the latest registered schema of each region's topic."""
    issues: list[LintIssue] = []
    subjects = set(client.subjects())
    for contract in contracts:
        found = False
        seen: dict[tuple[str, str], int] = {}
        for region in REGIONS:
            subject = subject_template.format(topic=f"{region}.{contract.dataset}")
            if subject not in subjects:
                continue
            latest = client.latest(subject)
            if latest is None:
                continue
            found = True
            fields = registered_fields(str(latest.schema.schema_type.value), latest.schema.text)
            if fields is None:
                line, column = contract.position("schema[0]")
                issues.append(
                    LintIssue(
                        contract.source,
                        "schema[0]",
                        f"{subject} is not a row schema (object or record); cannot compare",
                        line,
                        column,
                        "warning",
                    )
                )
                continue
            for problem in compare(contract, subject, latest.version, fields):
                key = (problem.path, problem.message.replace(subject, "<subject>"))
                if key in seen:
                    continue  # the same problem in every region's subject: report it once
                seen[key] = 1
                issues.append(problem)
        if not found:
            issues.append(
                LintIssue(
                    contract.source,
                    "schema[0].physicalName",
                    f"no schema is registered for the topics of {contract.dataset} yet: "
                    "compatibility not checked",
                    *contract.position("schema[0].physicalName"),
                    severity="warning",
                )
            )
    return issues
