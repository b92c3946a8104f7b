"""A contract compiled into the checks the engine runs (pure: no data, no engine).

Implicit rules come from the properties (``required``, ``unique``, ``primaryKey``,
``logicalTypeOptions`` ranges, lengths and patterns, foreign keys in ``relationships``), explicit
ones from the ``quality`` lists (ODCS library metrics and SQL rules), and dataset-level ones from
the schema object and the SLAs (``rowCount``, freshness). Each check has a stable name
(``quantity.range``, ``status_accepted_values``...) that results, metrics and quarantined rows use.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from shopops.quality.contracts import SQL_TABLE, sql_for
from shopops.quality.model import NO_FAILING_ROWS, CheckKind, CheckSpec, Contract, QualityRule, Threshold

#: A loose check of e-mail addresses: one ``@``, no spaces, a dot in the domain.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def row_condition(query: str) -> str | None:
    """For ``SELECT COUNT(*) FROM t WHERE <cond>``, the condition a failing row meets; else ``None``.

    Such SQL rules identify their failing rows (and so can quarantine them); any other query is a
    dataset-level rule whose number is compared with the threshold.
    """
    try:
        parsed = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(parsed, exp.Select) or parsed.args.get("group") or parsed.args.get("joins"):
        return None
    if any(parsed.args.get(k) for k in ("with", "with_", "having", "limit", "qualify")):
        return None
    source = parsed.args.get("from_") or parsed.args.get("from")
    if source is None or not isinstance(source.this, exp.Table) or source.this.name != SQL_TABLE:
        return None
    if len(parsed.expressions) != 1:
        return None
    count = parsed.expressions[0]
    if isinstance(count, exp.Alias):
        count = count.this
    if not isinstance(count, exp.Count) or not isinstance(count.this, exp.Star):
        return None
    where = parsed.args.get("where")
    if where is None:
        return None
    condition: str = where.this.sql(dialect="duckdb")
    return condition


def _metric_check(rule: QualityRule, name: str) -> CheckSpec | None:
    threshold = rule.threshold or NO_FAILING_ROWS
    common: dict[str, Any] = {
        "name": name,
        "threshold": threshold,
        "unit": rule.unit,
        "severity": rule.severity,
        "description": rule.description or "",
    }
    col = rule.column
    args = rule.arguments
    if rule.metric == "nullValues" and col:
        return CheckSpec(kind="required", level="row", columns=(col,), **common)
    if rule.metric == "missingValues" and col:
        return CheckSpec(
            kind="missing",
            level="row",
            columns=(col,),
            params={"missing": list(args.get("missingValues", [None, ""]))},
            **common,
        )
    if rule.metric == "invalidValues" and col:
        if args.get("validValues") is not None:
            return CheckSpec(
                kind="accepted_values",
                level="row",
                columns=(col,),
                params={"values": list(args["validValues"])},
                **common,
            )
        return CheckSpec(
            kind="pattern", level="row", columns=(col,), params={"pattern": str(args["pattern"])}, **common
        )
    if rule.metric == "duplicateValues":
        cols = (col,) if col else tuple(str(c) for c in args.get("properties", []))
        return CheckSpec(kind="unique", level="row", columns=cols, **common)
    if rule.metric == "rowCount":
        return CheckSpec(kind="row_count", level="dataset", **common)
    return None


def compile_checks(contract: Contract) -> list[CheckSpec]:
    """Every check of ``contract``, in a stable order."""
    checks: list[CheckSpec] = []
    names: set[str] = set()

    def add(spec: CheckSpec) -> None:
        name, n = spec.name, 2
        while name in names:  # two rules may derive the same name: keep both, distinctly named
            name, n = f"{spec.name}_{n}", n + 1
        names.add(name)
        checks.append(spec if name == spec.name else _renamed(spec, name))

    pk = contract.primary_key
    for p in contract.properties:
        add(
            CheckSpec(
                f"{p.name}.type",
                "type",
                "schema",
                (p.name,),
                params={"logical_type": p.logical_type, "physical_type": p.physical_type},
            )
        )
    for p in contract.properties:
        if p.required:
            add(
                CheckSpec(
                    f"{p.name}.required",
                    "required",
                    "row",
                    (p.name,),
                    description=f"{p.name} must not be null",
                )
            )
    if pk:
        add(
            CheckSpec(
                "primary_key", "primary_key", "row", pk, description=f"({', '.join(pk)}) identifies one row"
            )
        )
    for p in contract.properties:
        if p.unique and (p.name,) != pk:
            add(
                CheckSpec(
                    f"{p.name}.unique",
                    "unique",
                    "row",
                    (p.name,),
                    description=f"no two rows share a {p.name}",
                )
            )
        opts = p.options
        pattern = opts.get("pattern")
        if pattern is None and str(opts.get("format", "")).lower() == "email":
            pattern = EMAIL_PATTERN
        if pattern is not None:
            add(CheckSpec(f"{p.name}.pattern", "pattern", "row", (p.name,), params={"pattern": str(pattern)}))
        if "minLength" in opts or "maxLength" in opts:
            add(
                CheckSpec(
                    f"{p.name}.length",
                    "length",
                    "row",
                    (p.name,),
                    params={"min": opts.get("minLength"), "max": opts.get("maxLength")},
                )
            )
        bounds: dict[str, Any] = {
            k: opts[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in opts
        }
        if bounds and p.logical_type in ("integer", "number"):
            add(CheckSpec(f"{p.name}.range", "range", "row", (p.name,), params=bounds))
        for ref in p.references:
            add(
                CheckSpec(
                    f"{p.name}.references",
                    "references",
                    "row",
                    (p.name,),
                    params={"object": ref.target_object, "column": ref.target_column},
                    description=f"{p.name} exists in {ref.target_object}.{ref.target_column}",
                )
            )
        for rule in p.quality:
            spec = _rule_check(rule, f"{p.name}.{rule.metric or 'sql'}")
            if spec is not None:
                add(spec)
    for i, rule in enumerate(contract.quality):
        spec = _rule_check(rule, rule.metric or f"sql_{i + 1}")
        if spec is not None:
            add(spec)
    fresh = contract.freshness
    if fresh is not None and fresh.seconds is not None and fresh.element:
        add(
            CheckSpec(
                "freshness",
                "freshness",
                "dataset",
                (fresh.element.split(".")[-1],),
                threshold=Threshold("mustBeLessOrEqualTo", fresh.seconds),
                unit="seconds",
                description=f"the newest {fresh.element} is at most {fresh.value} {fresh.unit} old",
            )
        )
    return checks


def _rule_check(rule: QualityRule, default_name: str) -> CheckSpec | None:
    name = rule.name or default_name
    if rule.type == "sql":
        query = sql_for(rule)
        condition = row_condition(query)
        return CheckSpec(
            name,
            "sql",
            "row" if condition is not None else "dataset",
            (rule.column,) if rule.column else (),
            threshold=rule.threshold or NO_FAILING_ROWS,
            unit=rule.unit,
            severity=rule.severity,
            description=rule.description or "",
            params={"query": query, "condition": condition},
        )
    return _metric_check(rule, name)


def _renamed(spec: CheckSpec, name: str) -> CheckSpec:
    return CheckSpec(
        name,
        spec.kind,
        spec.level,
        spec.columns,
        spec.threshold,
        spec.unit,
        spec.severity,
        spec.description,
        spec.params,
    )


__all__ = ["EMAIL_PATTERN", "CheckKind", "compile_checks", "row_condition"]
