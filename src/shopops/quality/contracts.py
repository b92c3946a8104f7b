"""Reading and linting Open Data Contract Standard (ODCS v3) files.

A contract file is checked in three steps, each problem reported with the file, the YAML path
(``schema[0].properties[3].logicalType``) and the line and column it is on:

1. YAML: syntax errors and duplicate keys (which YAML parsers silently resolve to the last one);
2. the standard: the official ODCS JSON Schema, shipped by the ``open-data-contract-standard``
   package, validates every field (unknown fields, wrong types, missing required fields);
3. what shopops executes: one schema object naming its dataset (``physicalName: shop.orders``),
   typed properties, quality rules shopops can run (known metrics with their arguments, SQL that
   parses and names existing columns), rules and SLAs on existing columns, foreign keys to
   existing columns of other contracts.

Compatibility with the schema registered for the dataset's topics is a separate step
(:mod:`shopops.quality.compat`), since it needs the registry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped]

from shopops.quality.model import (
    FRESHNESS_SLA,
    LOGICAL_TYPES,
    OPERATORS,
    Contract,
    LintIssue,
    Property,
    QualityRule,
    Reference,
    Severity,
    Sla,
    Threshold,
)

#: ``schema[0].physicalName``: the dataset a contract governs, ``<database>.<table>``.
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
#: Placeholders a SQL quality rule may use for the checked table and column.
TABLE_PLACEHOLDERS = ("${object}", "${table}", "${schema}", "{object}", "{table}")
COLUMN_PLACEHOLDERS = ("${column}", "${property}", "{column}", "{property}")
#: The name SQL rules are parsed and run against.
SQL_TABLE = "checked_rows"
CONTRACT_SUFFIXES = (".yaml", ".yml")

Path_ = tuple[str | int, ...]


@lru_cache(maxsize=1)
def odcs_validator() -> Draft201909Validator:
    """The validator of the official ODCS JSON Schema (v3.x; shipped by open-data-contract-standard)."""
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text("utf-8")
    schema = json.loads(text)
    return Draft201909Validator(schema, format_checker=Draft201909Validator.FORMAT_CHECKER)


def format_path(path: Iterable[str | int]) -> str:
    """``("schema", 0, "properties", 3, "name")`` -> ``schema[0].properties[3].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- YAML with positions -----------------------------------------------------------------------


@dataclass
class _Positions:
    """Line and column (1-based) of every node of a YAML document, by path."""

    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int, int]] = field(default_factory=list)

    def walk(self, node: yaml.Node, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if key in seen:
                    self.duplicates.append((child, *mark))
                seen.add(key)
                self.marks.setdefault(child, mark)
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*path, i)
                self.marks[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                self.walk(item, child)

    def at(self, path: Sequence[str | int]) -> tuple[int | None, int | None]:
        """The position of ``path``, else of its closest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return (1, 1)


class _Issues:
    """Collects issues of one file, placing each one on its line."""

    def __init__(self, file: str, positions: _Positions) -> None:
        self.file = file
        self.positions = positions
        self.items: list[LintIssue] = []

    def add(self, path: Sequence[str | int], message: str, severity: str = "error") -> None:
        line, column = self.positions.at(path)
        self.items.append(
            LintIssue(
                self.file,
                format_path(path),
                message,
                line,
                column,
                "warning" if severity == "warning" else "error",
            )
        )

    @property
    def errors(self) -> int:
        return sum(1 for i in self.items if i.severity == "error")


# --- JSON Schema errors in words --------------------------------------------------------------------

_UNEXPECTED = re.compile(r"\('(.+)' (?:was|were) unexpected\)")


def _leaf(error: ValidationError) -> ValidationError:
    """The most specific error under a ``oneOf``/``anyOf``/``allOf`` failure."""
    while error.context:
        deeper = best_match(error.context)
        if deeper is None:
            break
        error = deeper
    return error


def _schema_issues(doc: Any, issues: _Issues) -> None:
    seen: set[tuple[str, str]] = set()
    leaves = [
        _leaf(e)
        for e in sorted(odcs_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    # An object that fails a rule also reports its fields as "unevaluated": only the rule counts.
    failing = {
        tuple(map(str, leaf.absolute_path))
        for leaf in leaves
        if leaf.validator not in ("additionalProperties", "unevaluatedProperties")
    }
    for leaf in leaves:
        if leaf.validator == "unevaluatedProperties" and tuple(map(str, leaf.absolute_path)) in failing:
            continue
        path: list[str | int] = list(leaf.absolute_path)
        message = leaf.message
        if leaf.validator in ("additionalProperties", "unevaluatedProperties"):
            found = _UNEXPECTED.search(leaf.message)
            names = [n.strip(" '") for n in found.group(1).split(",")] if found else []
            for name in names or ["?"]:
                key = (format_path([*path, name]), "unknown")
                if key not in seen:
                    seen.add(key)
                    issues.add(
                        [*path, name],
                        f"unknown field {name!r}: not part of the ODCS standard at this place "
                        "(check the spelling; put your own metadata under customProperties)",
                    )
            continue
        if leaf.validator == "required":
            missing = re.match(r"'(.+)' is a required property", leaf.message)
            if missing and missing.group(1) in OPERATORS:
                message = f"a quality rule needs one comparison: {', '.join(OPERATORS)}"
            else:
                message = f"missing required field {missing.group(1)!r}" if missing else leaf.message
        elif leaf.validator == "type":
            message = f"{leaf.instance!r} is not of type {leaf.validator_value!r}"
        elif leaf.validator == "enum":
            message = f"{leaf.instance!r} is not one of {leaf.validator_value!r}"
        key = (format_path(path), message)
        if key not in seen:
            seen.add(key)
            issues.add(path, message)


# --- what shopops executes ------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _threshold(rule: dict[str, Any]) -> tuple[Threshold | None, str | None]:
    """The operator of a rule, or a problem (several operators, a malformed value)."""
    given = [op for op in OPERATORS if op in rule]
    if not given:
        return None, None
    if len(given) > 1:
        return None, f"give one comparison operator, not {', '.join(given)}"
    op = given[0]
    value = rule[op]
    if op in ("mustBeBetween", "mustNotBeBetween"):
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            return None, f"{op} needs two numbers, smallest first"
        if value[0] > value[1]:
            return None, f"{op} needs the smallest number first (got {value})"
    elif not _is_number(value):
        return None, f"{op} needs a number (got {value!r})"
    return Threshold(op, value), None


def _regex_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return f"pattern must be a string (got {pattern!r})"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"pattern {pattern!r} is not a regular expression: {exc}"
    return None


def _substitute(query: str, column: str | None) -> str:
    for placeholder in TABLE_PLACEHOLDERS:
        query = query.replace(placeholder, SQL_TABLE)
    if column is not None:
        for placeholder in COLUMN_PLACEHOLDERS:
            query = query.replace(placeholder, f'"{column}"')
    return query


def sql_for(rule: QualityRule) -> str:
    """The rule's query with the table (and column) placeholders filled in."""
    return _substitute(rule.query or "", rule.column)


def _sql_problem(query: str, column: str | None, known: set[str]) -> str | None:
    """Whether a SQL rule parses (DuckDB dialect) and names only known columns."""
    import sqlglot
    from sqlglot import exp

    text = _substitute(query, column)
    try:
        parsed = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        return f"the query does not parse: {first.get('description', exc)}"
    if not isinstance(parsed, exp.Query):
        return "the query must be a SELECT returning one number"
    aliases = {a.alias for a in parsed.find_all(exp.Alias) if a.alias}
    tables = {t.name for t in parsed.find_all(exp.Table)}
    if SQL_TABLE not in tables:
        return f"the query must read the checked table through a placeholder ({TABLE_PLACEHOLDERS[0]})"
    unknown = sorted({c.name for c in parsed.find_all(exp.Column)} - known - aliases - {"*"})
    if unknown:
        return f"the query names column(s) the contract does not have: {', '.join(unknown)}"
    return None


@dataclass
class _Built:
    contract: Contract | None
    #: Foreign keys to resolve against the other contracts: (path, target object, target column).
    references: list[tuple[Path_, str, str]] = field(default_factory=list)


def _rule(
    raw: dict[str, Any], path: Path_, column: str | None, known: set[str], issues: _Issues
) -> QualityRule | None:
    kind = raw.get("type", "library")
    where = list(path)
    severity = str(raw.get("severity", "error")).lower()
    if severity not in ("error", "warning", "info"):
        issues.add([*where, "severity"], f"severity {severity!r} is not one of error, warning, info")
        severity = "error"
    unit = str(raw.get("unit", "rows"))
    if unit not in ("rows", "percent"):
        issues.add([*where, "unit"], f"unit {unit!r} is not one of rows, percent")
    threshold, problem = _threshold(raw)
    if problem:
        issues.add(where, problem)
    common = {
        "path": format_path(path),
        "name": raw.get("name") if isinstance(raw.get("name"), str) else None,
        "severity": severity,
        "description": raw.get("description"),
        "dimension": raw.get("dimension"),
        "unit": unit,
        "column": column,
        "threshold": threshold,
    }
    if kind == "text":
        return None  # prose for people; nothing to execute
    if kind == "custom":
        issues.add(where, "custom rules are not executed by shopops (use library metrics or sql)", "warning")
        return None
    if kind == "sql":
        query = raw.get("query")
        if not isinstance(query, str) or not query.strip():
            issues.add([*where, "query"], "a sql rule needs a query")
            return None
        sql_problem = _sql_problem(query, column, known)
        if sql_problem:
            issues.add([*where, "query"], sql_problem)
            return None
        return QualityRule(type="sql", query=query, **common)  # type: ignore[arg-type]
    metric = raw.get("metric") or raw.get("rule")
    if not isinstance(metric, str):
        issues.add(
            where,
            "a library rule needs a metric "
            "(nullValues, missingValues, invalidValues, duplicateValues, rowCount)",
        )
        return None
    args = raw.get("arguments") or {}
    if not isinstance(args, dict):
        issues.add([*where, "arguments"], "arguments must be a mapping")
        return None
    if metric == "rowCount":
        if column is not None:
            issues.add(
                [*where, "metric"], "rowCount is a schema-level rule: move it to the schema object's quality"
            )
            return None
        if threshold is None:
            issues.add(
                where, "rowCount needs a bound, e.g. mustBeGreaterThan: 0 or mustBeBetween: [1, 1000000]"
            )
            return None
    elif metric in ("nullValues", "missingValues", "invalidValues"):
        if column is None:
            issues.add(
                [*where, "metric"], f"{metric} is a property-level rule: move it to a property's quality"
            )
            return None
        if metric == "invalidValues":
            valid, pattern = args.get("validValues"), args.get("pattern")
            if valid is None and pattern is None:
                issues.add(
                    [*where, "arguments"],
                    "invalidValues needs arguments.validValues (a list) or arguments.pattern",
                )
                return None
            if valid is not None and not (isinstance(valid, list) and valid):
                issues.add([*where, "arguments", "validValues"], "validValues must be a non-empty list")
                return None
            if pattern is not None:
                regex_problem = _regex_problem(pattern)
                if regex_problem:
                    issues.add([*where, "arguments", "pattern"], regex_problem)
                    return None
        if metric == "missingValues":
            missing = args.get("missingValues", [None, ""])
            if not isinstance(missing, list):
                issues.add([*where, "arguments", "missingValues"], "missingValues must be a list")
                return None
    elif metric == "duplicateValues":
        if column is None:
            props = args.get("properties")
            if not (isinstance(props, list) and props and all(isinstance(p, str) for p in props)):
                issues.add(
                    [*where, "arguments"],
                    "a schema-level duplicateValues needs arguments.properties: "
                    "the columns that together must be unique",
                )
                return None
            unknown = [p for p in props if p not in known]
            if unknown:
                issues.add(
                    [*where, "arguments", "properties"],
                    f"unknown column(s) {', '.join(unknown)}: the schema object has no such property",
                )
                return None
    else:
        issues.add([*where, "metric"], f"unknown metric {metric!r}")
        return None
    return QualityRule(type="library", metric=metric, arguments=dict(args), **common)  # type: ignore[arg-type]


def _property(
    raw: dict[str, Any], path: Path_, known: set[str], issues: _Issues, refs: list[tuple[Path_, str, str]]
) -> Property | None:
    name = raw.get("name")
    if not isinstance(name, str):
        return None
    logical = raw.get("logicalType")
    if logical is None:
        issues.add([*path], f"property {name!r} needs a logicalType ({', '.join(LOGICAL_TYPES)})")
    elif logical not in LOGICAL_TYPES and logical in ("time", "object", "array", "map", "vector"):
        issues.add(
            [*path, "logicalType"],
            f"logicalType {logical!r} is not checked by shopops (use {', '.join(LOGICAL_TYPES)})",
        )
    options = raw.get("logicalTypeOptions") or {}
    if isinstance(options, dict):
        if "pattern" in options:
            problem = _regex_problem(options["pattern"])
            if problem:
                issues.add([*path, "logicalTypeOptions", "pattern"], problem)
        low = options.get("minimum", options.get("exclusiveMinimum"))
        high = options.get("maximum", options.get("exclusiveMaximum"))
        if _is_number(low) and _is_number(high) and float(low or 0) > float(high or 0):
            issues.add([*path, "logicalTypeOptions"], f"minimum {low} is above maximum {high}")
    rules: list[QualityRule] = []
    for i, item in enumerate(raw.get("quality") or []):
        if isinstance(item, dict):
            rule = _rule(item, (*path, "quality", i), name, known, issues)
            if rule is not None:
                rules.append(rule)
    references: list[Reference] = []
    for i, rel in enumerate(raw.get("relationships") or []):
        if not isinstance(rel, dict) or not isinstance(rel.get("to"), str):
            continue
        target = rel["to"]
        where = (*path, "relationships", i, "to")
        parts = target.split(".")
        if len(parts) != 2:
            issues.add(where, f"use the shorthand <object>.<column> for a foreign key (got {target!r})")
            continue
        references.append(Reference(format_path(where), parts[0], parts[1]))
        refs.append((where, parts[0], parts[1]))
    tags = tuple(str(t) for t in raw.get("tags") or [])
    return Property(
        name=name,
        path=format_path(path),
        logical_type=logical if isinstance(logical, str) else None,
        physical_type=raw.get("physicalType") if isinstance(raw.get("physicalType"), str) else None,
        required=bool(raw.get("required", False)) or bool(raw.get("primaryKey", False)),
        unique=bool(raw.get("unique", False)),
        primary_key=bool(raw.get("primaryKey", False)),
        primary_key_position=int(raw.get("primaryKeyPosition", -1))
        if _is_number(raw.get("primaryKeyPosition", -1))
        else -1,
        classification=raw.get("classification") if isinstance(raw.get("classification"), str) else None,
        tags=tags,
        description=raw.get("description") if isinstance(raw.get("description"), str) else None,
        options=dict(options) if isinstance(options, dict) else {},
        quality=tuple(rules),
        references=tuple(references),
    )


def _owner(doc: dict[str, Any]) -> str | None:
    team = doc.get("team")
    if isinstance(team, dict):
        members = [m for m in team.get("members") or [] if isinstance(m, dict)]
        owner = next((m for m in members if str(m.get("role", "")).lower() == "owner"), None)
        if isinstance(team.get("name"), str):
            return str(team["name"])
        if owner is not None:
            return str(owner.get("username"))
    if isinstance(team, list):
        owner = next(
            (m for m in team if isinstance(m, dict) and str(m.get("role", "")).lower() == "owner"), None
        )
        if owner is not None:
            return str(owner.get("username"))
    return None


def _build(doc: dict[str, Any], file: str, issues: _Issues) -> _Built:
    api_version = str(doc.get("apiVersion", ""))
    if api_version and not api_version.startswith("v3."):
        issues.add(["apiVersion"], f"shopops reads ODCS v3 contracts (apiVersion v3.x); got {api_version!r}")
    objects = doc.get("schema")
    if not isinstance(objects, list) or not objects:
        issues.add(
            ["schema"] if "schema" in doc else [],
            "a contract needs a schema with one object: the dataset it governs",
        )
        return _Built(None)
    if len(objects) > 1:
        issues.add(["schema", 1], "one contract per dataset: this file has more than one schema object")
    obj = objects[0]
    if not isinstance(obj, dict):
        return _Built(None)
    dataset = obj.get("physicalName")
    if not isinstance(dataset, str) or not DATASET_NAME.match(dataset):
        issues.add(
            ["schema", 0, "physicalName"] if "physicalName" in obj else ["schema", 0],
            f"physicalName must name the dataset as <database>.<table>, e.g. shop.orders (got {dataset!r})",
        )
        dataset = None
    raw_props = [p for p in obj.get("properties") or [] if isinstance(p, dict)]
    names = [p.get("name") for p in raw_props]
    known = {n for n in names if isinstance(n, str)}
    seen: set[str] = set()
    for i, name in enumerate(names):
        if isinstance(name, str) and name in seen:
            issues.add(["schema", 0, "properties", i, "name"], f"property {name!r} is defined twice")
        if isinstance(name, str):
            seen.add(name)
    refs: list[tuple[Path_, str, str]] = []
    props: list[Property] = []
    for i, raw in enumerate(raw_props):
        prop = _property(raw, ("schema", 0, "properties", i), known, issues, refs)
        if prop is not None:
            props.append(prop)
    rules: list[QualityRule] = []
    for i, item in enumerate(obj.get("quality") or []):
        if isinstance(item, dict):
            rule = _rule(item, ("schema", 0, "quality", i), None, known, issues)
            if rule is not None:
                rules.append(rule)
    slas: list[Sla] = []
    by_name = {p.name: p for p in props}
    object_name = str(obj.get("name", ""))
    for i, raw in enumerate(doc.get("slaProperties") or []):
        if not isinstance(raw, dict) or "property" not in raw:
            continue
        where: Path_ = ("slaProperties", i)
        sla = Sla(
            format_path(where), str(raw["property"]), raw.get("value"), raw.get("unit"), raw.get("element")
        )
        if sla.name in (*FRESHNESS_SLA, "retention") and sla.seconds is None:
            issues.add(
                where,
                f"{sla.name} needs a numeric value and a time unit (s, m, h, d, y...)",
            )
        if sla.name in FRESHNESS_SLA:
            element = sla.element or ""
            column = element.split(".")[-1] if element else ""
            prefix = element.rsplit(".", 1)[0] if "." in element else object_name
            if not element:
                issues.add(where, f"{sla.name} needs an element: the timestamp column it is measured on")
            elif column not in by_name or prefix != object_name:
                issues.add(
                    (*where, "element"),
                    f"unknown column {element!r}: the schema object {object_name!r} has no such property",
                )
            elif by_name[column].logical_type not in ("timestamp", "date"):
                issues.add(
                    (*where, "element"),
                    f"freshness is measured on a timestamp or date column; "
                    f"{column!r} is {by_name[column].logical_type}",
                )
        slas.append(sla)
    if _owner(doc) is None:
        issues.add(
            ["team"] if "team" in doc else [],
            "no owner: name the owning team (team.name) or a member with role owner",
            "warning",
        )
    custom = {
        str(c["property"]): c.get("value")
        for c in doc.get("customProperties") or []
        if isinstance(c, dict) and "property" in c
    }
    if dataset is None:
        return _Built(None, refs)
    description = doc.get("description")
    contract = Contract(
        id=str(doc.get("id", "")),
        version=str(doc.get("version", "")),
        dataset=dataset,
        object_name=object_name,
        source=file,
        name=doc.get("name") if isinstance(doc.get("name"), str) else None,
        status=doc.get("status") if isinstance(doc.get("status"), str) else None,
        api_version=api_version,
        domain=doc.get("domain") if isinstance(doc.get("domain"), str) else None,
        owner=_owner(doc),
        description=description.get("purpose") if isinstance(description, dict) else None,
        properties=tuple(props),
        quality=tuple(rules),
        slas=tuple(slas),
        custom=custom,
        document=doc,
        positions={format_path(p): mark for p, mark in issues.positions.marks.items()},
    )
    return _Built(contract, refs)


@dataclass
class ParsedFile:
    """One contract file: the contract (``None`` when it cannot be used) and its issues."""

    file: str
    contract: Contract | None
    issues: list[LintIssue]
    references: list[tuple[str, int | None, int | None, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)


def parse_contract(text: str, file: str = "<contract>") -> ParsedFile:
    """Parse and lint one contract file's text (foreign keys are resolved by :func:`lint_contracts`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return ParsedFile(file, None, [LintIssue(file, "", f"invalid YAML: {what}", line, column)])
    except yaml.YAMLError as exc:
        return ParsedFile(file, None, [LintIssue(file, "", f"invalid YAML: {exc}", 1, 1)])
    positions = _Positions()
    issues = _Issues(file, positions)
    if root is None:
        issues.add(
            [], "the file is empty: a contract needs at least apiVersion, kind, id, version and schema"
        )
        return ParsedFile(file, None, issues.items)
    positions.walk(root, ())
    for path, line, column in positions.duplicates:
        issues.items.append(
            LintIssue(
                file,
                format_path(path),
                f"duplicate key {path[-1]!r}: YAML keeps only the last one",
                line,
                column,
            )
        )
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        issues.add([], f"a contract is a YAML mapping, not a {type(doc).__name__}")
        return ParsedFile(file, None, issues.items)
    _schema_issues(doc, issues)
    built = _build(doc, file, issues)
    refs = [(format_path(p), *positions.at(p), obj, col) for p, obj, col in built.references]
    return ParsedFile(file, built.contract, issues.items, refs)


def contract_files(paths: Sequence[Path]) -> list[Path]:
    """The contract files named by ``paths`` (directories: their ``*.yaml``/``*.yml`` files)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in CONTRACT_SUFFIXES and p.is_file())
        else:
            out.append(path)
    return out


@dataclass
class LintReport:
    """Every file linted, the contracts usable, and every issue found."""

    files: list[str]
    contracts: list[Contract]
    issues: list[LintIssue]

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def lint_texts(texts: Sequence[tuple[str, str]], context: Sequence[Contract] = ()) -> LintReport:
    """Lint ``(file, text)`` pairs together; foreign keys resolve against them and ``context``."""
    parsed = [parse_contract(text, file) for file, text in texts]
    issues = [i for p in parsed for i in p.issues]
    contracts = [p.contract for p in parsed if p.contract is not None]
    by_dataset: dict[str, Contract] = {}
    for p in parsed:
        c = p.contract
        if c is None:
            continue
        other = by_dataset.get(c.dataset)
        if other is not None:
            issues.append(
                LintIssue(
                    p.file,
                    "schema[0].physicalName",
                    f"dataset {c.dataset} already has a contract in {other.source}",
                    1,
                    1,
                )
            )
        by_dataset[c.dataset] = c
    objects = {c.object_name: c for c in [*context, *contracts]}
    for p in parsed:
        for path, line, column, obj, col in p.references:
            target = objects.get(obj)
            if target is None:
                issues.append(
                    LintIssue(
                        p.file,
                        path,
                        f"foreign key to unknown object {obj!r}: "
                        "no contract has a schema object of that name",
                        line,
                        column,
                    )
                )
            elif col not in target.columns:
                issues.append(
                    LintIssue(
                        p.file,
                        path,
                        f"foreign key to unknown column {obj}.{col}: {target.source} has no such property",
                        line,
                        column,
                    )
                )
    usable = [c for c in contracts if not any(i.file == c.source and i.severity == "error" for i in issues)]
    return LintReport([f for f, _ in texts], usable, issues)


def lint_paths(paths: Sequence[Path], context: Sequence[Contract] = ()) -> LintReport:
    """Lint contract files (and directories of them)."""
    texts: list[tuple[str, str]] = []
    issues: list[LintIssue] = []
    for path in contract_files(paths):
        try:
            texts.append((str(path), path.read_text("utf-8")))
        except FileNotFoundError:
            issues.append(LintIssue(str(path), "", "no such file"))
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(LintIssue(str(path), "", f"cannot read the file: {exc}"))
    report = lint_texts(texts, context)
    report.issues = issues + report.issues
    report.files = [str(p) for p in contract_files(paths)]
    return report


def severity_of(value: str) -> Severity:
    return "warning" if value == "warning" else ("info" if value == "info" else "error")
