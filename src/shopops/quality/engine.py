"""Running a compiled contract over a table: pandera on Ibis/DuckDB, SQL rules in DuckDB.

The row-level checks of a contract become one pandera ``DataFrameSchema`` (``pandera.ibis``)
whose checks are Ibis boolean expressions over the whole table, so that pandera's failure cases
carry entire rows (their keys, and the row number of a micro-batch) rather than bare values. The
table is an Arrow table registered in an in-process DuckDB connection (no copy) under the name
``checked_rows``, which is also the name SQL rules read. Dataset-level checks (row count,
freshness, SQL rules that return one number) run as single DuckDB queries.

Two modes:

- ``batch`` (a CDC micro-batch of after-images): every failing row is identified (by its position)
  so that it can be quarantined; a key appearing twice in a batch is the same row changed twice,
  so primary-key uniqueness is left to the whole-table run, and other unique columns are checked
  across distinct keys; dataset-level checks are skipped. The same Ibis predicates pandera runs
  one query each are compiled once per batch schema into one DuckDB query that returns the failing
  rows with a flag per check (a failing row is one whose predicate is false, as in pandera; null
  passes): a batch costs one query, run in DuckDB outside the GIL, instead of a compilation and a
  query per check;
- ``table`` (a whole table, e.g. a silver table): counts are exact, failing keys are sampled.

Uniqueness is per region when the table carries a ``_region`` column (the regional databases
number their rows independently); foreign keys are checked across regions.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ibis
import pyarrow as pa

from shopops.core.logging import get_logger
from shopops.quality.contracts import SQL_TABLE
from shopops.quality.model import CheckOutcome, CheckSpec, Contract, FailingRow, Mode

log = get_logger("shopops.quality")

ROW_COLUMN = "__row"
REGION_COLUMN = "_region"
_REF_PREFIX = "ref__"
#: At most this many distinct reasons are kept per row (a row failing 30 checks is unreadable).
_MAX_REASONS = 8

Predicate = Callable[[Any], Any]


@dataclass
class EngineResult:
    """What one run of a contract's checks found."""

    outcomes: list[CheckOutcome]
    rows_checked: int
    #: Rows failing at least one row-level check whose failing rows are quarantined (severity error,
    #: no tolerance): the rows a micro-batch check would reject.
    rows_failed: int
    #: Batch mode: row position -> [(check, reason)] of every rejected row.
    rejected: dict[int, list[tuple[str, str]]] = field(default_factory=dict)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    return str(value)


def _shown(value: Any) -> str:
    value = _json_value(value)
    return repr(value) if isinstance(value, str) else str(value)


def _family_ok(dtype: Any, logical: str | None) -> bool:
    if logical is None:
        return True
    return bool(
        {
            "string": dtype.is_string(),
            "integer": dtype.is_integer(),
            "number": dtype.is_numeric(),
            "boolean": dtype.is_boolean(),
            "timestamp": dtype.is_timestamp(),
            "date": dtype.is_date(),
        }.get(logical, True)
    )


@dataclass(frozen=True)
class _BatchQuery:
    """The row checks of one batch schema as one query: the failing rows, a flag per check."""

    sql: str
    flags: dict[str, str]  # check name -> its flag column


class ContractRunner:
    """Runs the checks of one contract on tables registered in a DuckDB connection."""

    def __init__(self, contract: Contract, checks: list[CheckSpec]) -> None:
        self.contract = contract
        self.checks = checks
        self.key_columns = contract.primary_key
        #: Compiled batch queries by table schema and references (batches of a topic share one).
        self._batch_queries: dict[Any, _BatchQuery] = {}

    # -- predicates: True for a row that passes ---------------------------------------------------

    def _group(self, t: Any, cols: Iterable[str]) -> list[str]:
        return ([REGION_COLUMN] if REGION_COLUMN in t.columns else []) + list(cols)

    def _duplicated(self, t: Any, cols: tuple[str, ...], *, distinct_keys: bool) -> Any:
        """Rows whose ``cols`` (per region) are shared by more than one row (or more than one key)."""
        group = self._group(t, cols)
        present = t.filter([t[c].notnull() for c in cols])
        keys = [k for k in self.key_columns if k in t.columns and k not in cols]
        if distinct_keys and keys:
            key = t[keys[0]] if len(keys) == 1 else ibis.struct({k: t[k] for k in keys})
            counted = present.group_by(group).aggregate(n_rows__=key.nunique())
        else:
            counted = present.group_by(group).aggregate(n_rows__=ibis._.count())
        dups = counted.filter(counted["n_rows__"] > 1)
        if len(group) == 1:
            return ~t[group[0]].isin(dups[group[0]]).fill_null(False)
        mine = ibis.struct({c: t[c] for c in group})
        theirs = ibis.struct({c: dups[c] for c in group})
        return ~mine.isin(dups.select(k__=theirs)["k__"]).fill_null(False)

    def _predicate(self, spec: CheckSpec, t: Any, refs: Mapping[str, Any], batch: bool) -> Predicate | None:
        c = spec.columns[0] if spec.columns else None
        p = spec.params
        if spec.kind == "required":
            return lambda d: d.table[c].notnull()
        if spec.kind == "missing":
            values = [v for v in p["missing"] if v is not None]
            nulls = None in p["missing"]

            def contract_missing_values(d: Any) -> Any:
                col = d.table[c]
                bad = col.isin(values).fill_null(False) if values else ibis.literal(False)
                return ~((col.isnull() | bad) if nulls else bad)

            return contract_missing_values
        if spec.kind == "accepted_values":
            values = p["values"]
            return lambda d: d.table[c].isin(values).fill_null(True)
        if spec.kind == "pattern":
            pattern = p["pattern"]
            return lambda d: d.table[c].cast("string").re_search(pattern).fill_null(True)
        if spec.kind == "length":
            low, high = p.get("min"), p.get("max")

            def contract_length(d: Any) -> Any:
                n = d.table[c].length()
                ok = ibis.literal(True)
                if low is not None:
                    ok = ok & (n >= low)
                if high is not None:
                    ok = ok & (n <= high)
                return ok.fill_null(True)

            return contract_length
        if spec.kind == "range":

            def contract_range(d: Any) -> Any:
                col = d.table[c]
                ok = ibis.literal(True)
                if "minimum" in p:
                    ok = ok & (col >= p["minimum"])
                if "exclusiveMinimum" in p:
                    ok = ok & (col > p["exclusiveMinimum"])
                if "maximum" in p:
                    ok = ok & (col <= p["maximum"])
                if "exclusiveMaximum" in p:
                    ok = ok & (col < p["exclusiveMaximum"])
                if col.type().is_floating():
                    ok = ok & ~col.isnan().fill_null(False)
                return ok.fill_null(True)

            return contract_range
        if spec.kind in ("unique", "primary_key"):
            if spec.kind == "primary_key" and batch:
                return None  # a key seen twice in a batch is one row changed twice
            cols = spec.columns
            return lambda d: self._duplicated(d.table, cols, distinct_keys=batch)
        if spec.kind == "references":
            parent = refs.get(str(p["object"]))
            if parent is None:
                return None
            target = str(p["column"])
            return lambda d: d.table[c].isin(parent[target]).fill_null(True)
        return None

    def _reason(self, spec: CheckSpec, row: Mapping[str, Any]) -> str:
        c = spec.columns[0] if spec.columns else ""
        value = row.get(c)
        p = spec.params
        if spec.kind == "required":
            return f"{c} is null (required)"
        if spec.kind == "missing":
            return f"{c} is missing ({_shown(value)})"
        if spec.kind == "accepted_values":
            values = ", ".join(map(str, p["values"][:12]))
            return f"{c}={_shown(value)} is not an accepted value ({values})"
        if spec.kind == "pattern":
            return f"{c}={_shown(value)} does not match {p['pattern']}"
        if spec.kind == "length":
            return f"{c}={_shown(value)} has a length outside [{p.get('min')}, {p.get('max')}]"
        if spec.kind == "range":
            bounds = ", ".join(f"{k} {v}" for k, v in p.items())
            return f"{c}={_shown(value)} is out of range ({bounds})"
        if spec.kind == "unique":
            shown = ", ".join(f"{col}={_shown(row.get(col))}" for col in spec.columns)
            return f"{shown} is not unique: another row has it too"
        if spec.kind == "primary_key":
            shown = ", ".join(f"{col}={_shown(row.get(col))}" for col in spec.columns)
            return f"primary key ({shown}) appears more than once"
        if spec.kind == "references":
            return f"{c}={_shown(value)} has no match in {p['object']}.{p['column']}"
        if spec.kind == "sql":
            shown = ", ".join(f"{col}={_shown(row.get(col))}" for col in spec.columns if col in row)
            return f"fails {spec.name}{f' ({shown})' if shown else ''}: {spec.description or p['query']}"
        return f"fails {spec.name}"

    def _key(self, row: Mapping[str, Any]) -> dict[str, Any]:
        names = [REGION_COLUMN] if REGION_COLUMN in row else []
        names += [k for k in self.key_columns if k in row] or [k for k in row if not k.startswith("_")][:1]
        return {k: _json_value(row.get(k)) for k in names}

    # -- running ----------------------------------------------------------------------------------

    def run(
        self,
        con: Any,
        *,
        mode: Mode,
        rows: int,
        refs: Mapping[str, Any] | None = None,
        now_ms: int | None = None,
        sample_limit: int = 100,
        table: Any = None,
    ) -> EngineResult:
        """Run every check on the table registered as ``checked_rows`` in ``con`` (an Ibis DuckDB
        backend); ``refs`` maps a foreign key's target object to its Ibis table; ``table`` is the
        Ibis table of ``checked_rows`` when the caller has it."""
        import pandera.ibis as pai
        from pandera.api.checks import Check
        from pandera.errors import SchemaErrorReason, SchemaErrors

        batch = mode == "batch"
        t = table if table is not None else con.table(SQL_TABLE)
        schema = t.schema()
        present = set(t.columns)
        outcomes: dict[str, CheckOutcome] = {}
        rejected: dict[int, list[tuple[str, str]]] = {}
        unusable: set[str] = set()  # columns absent or of the wrong type: their row checks cannot run
        all_rows_failed: list[tuple[str, str]] = []

        def outcome(spec: CheckSpec, **kw: Any) -> CheckOutcome:
            out = CheckOutcome(
                check=spec.name,
                kind=spec.kind,
                level=spec.level,
                columns=list(spec.columns),
                severity=spec.severity,
                passed=kw.pop("passed", True),
                rows_checked=rows,
                rows_failed=kw.pop("rows_failed", 0),
                observed=kw.pop("observed", None),
                expected=kw.pop("expected", spec.threshold.describe()),
                message=kw.pop("message", ""),
                **kw,
            )
            outcomes[spec.name] = out
            return out

        for spec in (s for s in self.checks if s.kind == "type"):
            col = spec.columns[0]
            prop = self.contract.columns[col]
            logical = spec.params.get("logical_type")
            if col not in present:
                unusable.add(col)
                if prop.required:
                    msg = f"required column {col} is missing"
                    outcome(spec, passed=False, rows_failed=rows, message=msg, expected="present")
                    all_rows_failed.append((spec.name, msg))
                else:
                    outcome(
                        spec, skipped=True, message=f"optional column {col} is absent", expected="present"
                    )
                continue
            dtype = schema[col]
            if not _family_ok(dtype, logical):
                unusable.add(col)
                msg = f"{col} has type {dtype}, the contract says {logical}"
                outcome(spec, passed=False, rows_failed=rows, message=msg, expected=str(logical))
                all_rows_failed.append((spec.name, msg))
            else:
                outcome(spec, message=f"{dtype}", expected=str(logical))

        # Row-level checks through pandera: one DataFrameSchema, every check over whole rows.
        predicates: dict[str, Predicate] = {}
        specs = {s.name: s for s in self.checks}
        for spec in self.checks:
            if spec.level != "row" or spec.kind in ("type", "sql"):
                continue
            if any(c in unusable for c in spec.columns):
                outcome(spec, skipped=True, message="not run: a column it needs is absent or mistyped")
                continue
            pred = self._predicate(spec, t, refs or {}, batch)
            if pred is None:
                why = (
                    "left to the whole-table run (a key may change twice in one batch)"
                    if spec.kind == "primary_key"
                    else "not run: the referenced table is not available to this run"
                )
                outcome(spec, skipped=True, message=why)
                continue
            predicates[spec.name] = pred
        errors: dict[str, Any] = {}
        failures: dict[str, list[dict[str, Any]]] = {}  # batch mode: the failing rows of each check
        broken: dict[str, str] = {}  # batch mode: checks that could not run, and why
        if predicates and rows and batch:
            failures, broken = self._batch_failures(con, t, predicates, refs or {})
        elif predicates and rows:
            checks = [
                Check(
                    pred,
                    name=name,
                    error=specs[name].description or name,
                    n_failure_cases=None if batch else sample_limit,
                )
                for name, pred in predicates.items()
            ]
            pandera_schema = pai.DataFrameSchema(
                {
                    c: pai.Column(required=False, nullable=True)
                    for c in t.columns
                    if c in self.contract.columns
                },
                checks=checks,
                name=self.contract.dataset,
            )
            try:
                pandera_schema.validate(t, lazy=True)
            except SchemaErrors as exc:
                for schema_error in exc.schema_errors:
                    name = getattr(schema_error.check, "name", None)
                    if name in predicates:
                        errors[name] = schema_error
        failing_sql: list[str] = []  # table mode: queries of the row numbers failing each check
        for name, pred in predicates.items():
            spec = specs[name]
            err = errors.get(name)
            if batch and name in broken:
                err_text = broken[name]
            elif err is not None and err.reason_code == SchemaErrorReason.CHECK_ERROR:
                err_text = str(err.failure_cases)
            else:
                err_text = None
            if err_text is not None:
                log.warning(
                    "quality check failed to run", dataset=self.contract.dataset, check=name, error=err_text
                )
                outcome(spec, passed=False, message=f"the check could not run: {err_text}")
                continue
            failing = failures.get(name, []) if batch else []
            if err is None and not failing:
                outcome(spec, rows_failed=0, observed=0.0, message="")
                continue
            if err is not None:
                failing = [fc for fc in err.failure_cases["failure_case"].tolist() if isinstance(fc, dict)]
            if batch:
                count = len(failing)
            else:
                failing_rows = t.filter(~pred(pai.IbisData(t)))
                count = int(failing_rows.count().execute())
                if spec.rejects_rows:
                    failing_sql.append(str(ibis.to_sql(failing_rows.select(ROW_COLUMN), dialect="duckdb")))
            observed = count * 100.0 / rows if spec.unit == "percent" and rows else float(count)
            samples = [FailingRow(self._key(r), self._reason(spec, r)) for r in failing[:sample_limit]]
            passed = spec.threshold.accepts(observed)
            outcome(
                spec,
                passed=passed,
                rows_failed=count,
                observed=observed,
                samples=samples,
                message=samples[0].reason + (f" (and {count - 1:,} more)" if count > 1 else "")
                if samples
                else "",
            )
            if batch and spec.rejects_rows:
                for r in failing:
                    rejected.setdefault(int(r[ROW_COLUMN]), []).append((name, self._reason(spec, r)))

        self._sql_checks(con, outcome, rejected, failing_sql, rows, batch, sample_limit)
        self._dataset_checks(con, t, outcome, rows, batch, now_ms)

        if all_rows_failed and batch:
            for i in range(rows):
                rejected.setdefault(i, []).extend(all_rows_failed)
        if batch:
            rows_failed = len(rejected)
        elif all_rows_failed:
            rows_failed = rows
        elif failing_sql:
            union = " UNION ".join(f"({q})" for q in failing_sql)
            rows_failed = int(_fetch(con.con, f"SELECT COUNT(*) FROM ({union})")[0][0])  # noqa: S608
        else:
            rows_failed = 0
        ordered = [outcomes[s.name] for s in self.checks if s.name in outcomes]
        return EngineResult(ordered, rows, rows_failed, rejected)

    def _batch_failures(
        self, con: Any, t: Any, predicates: Mapping[str, Predicate], refs: Mapping[str, Any]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
        """The failing rows (whole rows, as dicts) of each row check, from one query; and the
        checks that could not run, with the error (each is then tried alone)."""
        import pandera.ibis as pai

        key = (t.schema(), tuple(sorted((obj, ref.schema()) for obj, ref in refs.items())), tuple(predicates))
        query = self._batch_queries.get(key)
        if query is None:
            query = self._batch_queries[key] = self._compile_batch(t, predicates)
        raw = con.con
        failures: dict[str, list[dict[str, Any]]] = {}
        broken: dict[str, str] = {}
        try:
            found = [(list(query.flags), raw.sql(query.sql).to_arrow_table())]
        except Exception:  # a check cannot run on this data: find which, run the others alone
            found = []
            for name, flag in query.flags.items():
                fails = (~predicates[name](pai.IbisData(t))).fill_null(False)
                alone = str(ibis.to_sql(t.mutate(**{flag: fails}).filter(fails), dialect="duckdb"))
                try:
                    found.append(([name], raw.sql(alone).to_arrow_table()))
                except Exception as exc:
                    broken[name] = str(exc)
        columns = list(t.columns)
        for names, result in found:
            if result.num_rows == 0:
                continue
            rows = result.select(columns).to_pylist()
            for name in names:
                flags = result.column(query.flags[name]).to_pylist()
                hits = [row for row, hit in zip(rows, flags, strict=True) if hit]
                if hits:
                    failures[name] = hits
        return failures, broken

    def _compile_batch(self, t: Any, predicates: Mapping[str, Predicate]) -> _BatchQuery:
        import pandera.ibis as pai

        data = pai.IbisData(t)
        flags = {name: f"__fails_{n}" for n, name in enumerate(predicates)}
        # A failing row is one whose predicate is false; null passes (pandera filters on NOT pred).
        fails = {flags[name]: (~pred(data)).fill_null(False) for name, pred in predicates.items()}
        combined = t.mutate(**fails).filter(functools.reduce(operator.or_, fails.values()))
        return _BatchQuery(str(ibis.to_sql(combined, dialect="duckdb")), flags)

    def _sql_checks(
        self,
        con: Any,
        outcome: Callable[..., CheckOutcome],
        rejected: dict[int, list[tuple[str, str]]],
        failing_sql: list[str],
        rows: int,
        batch: bool,
        sample_limit: int,
    ) -> None:
        raw = con.con
        for spec in (s for s in self.checks if s.kind == "sql"):
            if batch and spec.level == "dataset":
                outcome(spec, skipped=True, message="a dataset-level rule: run on whole tables")
                continue
            try:
                value = _fetch(raw, spec.params["query"])
                observed = float(value[0][0]) if value and value[0][0] is not None else 0.0
            except Exception as exc:  # a rule that fails on this data is reported, not raised
                outcome(spec, passed=False, message=f"the query failed: {exc}")
                continue
            if spec.unit == "percent" and rows:
                observed = observed * 100.0 / rows
            samples: list[FailingRow] = []
            condition = spec.params.get("condition")
            count = int(observed) if spec.level == "row" and spec.unit != "percent" else 0
            if condition is not None and observed:
                limit = "" if batch else f" LIMIT {int(sample_limit)}"
                # The condition is the contract's own SQL rule, reviewed in git (lint parses it).
                failing = _fetch_dicts(raw, f"SELECT * FROM {SQL_TABLE} WHERE {condition}{limit}")  # noqa: S608
                samples = [FailingRow(self._key(r), self._reason(spec, r)) for r in failing[:sample_limit]]
                if batch and spec.rejects_rows:
                    for r in failing:
                        rejected.setdefault(int(r[ROW_COLUMN]), []).append((spec.name, self._reason(spec, r)))
                if not batch and spec.rejects_rows:
                    failing_sql.append(f"SELECT {ROW_COLUMN} FROM {SQL_TABLE} WHERE {condition}")  # noqa: S608
            passed = spec.threshold.accepts(observed)
            outcome(
                spec,
                passed=passed,
                rows_failed=count,
                observed=observed,
                samples=samples,
                message=(samples[0].reason if samples else f"{spec.name} = {observed:g}")
                if not passed
                else "",
            )

    def _dataset_checks(
        self,
        con: Any,
        t: Any,
        outcome: Callable[..., CheckOutcome],
        rows: int,
        batch: bool,
        now_ms: int | None,
    ) -> None:
        for spec in self.checks:
            if spec.kind not in ("row_count", "freshness"):
                continue
            if batch:
                outcome(spec, skipped=True, message="a dataset-level check: run on whole tables")
                continue
            if spec.kind == "row_count":
                passed = spec.threshold.accepts(rows)
                outcome(
                    spec,
                    passed=passed,
                    observed=float(rows),
                    message="" if passed else f"{rows:,} rows, expected {spec.threshold.describe()}",
                )
                continue
            col = spec.columns[0]
            if col not in t.columns:
                outcome(spec, passed=False, message=f"column {col} is missing")
                continue
            newest = t.aggregate(m__=t[col].max()).to_pyarrow()["m__"][0].as_py()
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            if newest is None or (isinstance(newest, float) and math.isnan(newest)):
                outcome(
                    spec,
                    passed=False,
                    message="no rows: nothing is fresh",
                    expected=spec.threshold.describe(),
                )
                continue
            newest_ms = _epoch_ms(newest)
            age_s = max(0.0, (now - newest_ms) / 1000)
            passed = spec.threshold.accepts(age_s)
            outcome(
                spec,
                passed=passed,
                observed=age_s,
                expected=f"age <= {spec.threshold.value:g} s",
                message=""
                if passed
                else f"the newest {col} is {_age(age_s)} old ({_json_value(newest)}); "
                f"the SLA allows {_age(float(spec.threshold.value))}",
            )


def _fetch(raw: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on a DuckDB connection and read every row (DuckDB refuses new work on a
    connection whose last result was not read to the end)."""
    rows: list[tuple[Any, ...]] = raw.execute(sql).fetchall()
    return rows


def _fetch_dicts(raw: Any, sql: str) -> list[dict[str, Any]]:
    cursor = raw.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _epoch_ms(value: Any) -> int:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, _dt.date):
        end = _dt.datetime.combine(value + _dt.timedelta(days=1), _dt.time(), tzinfo=_dt.UTC)
        return int(end.timestamp() * 1000)
    return int(value)


def _age(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


class DuckSession:
    """An in-process DuckDB connection (through Ibis) with a table registered as ``checked_rows``.

    Arrow tables are registered without a copy; foreign-key targets are registered beside it.
    Not thread-safe: callers serialise runs on one session.
    """

    def __init__(self) -> None:
        self.con = ibis.duckdb.connect()
        self.lock = threading.Lock()
        self._tables: dict[tuple[str, pa.Schema], Any] = {}

    def register(self, name: str, table: pa.Table) -> Any:
        """Register ``table`` as ``name``; returns its Ibis table. The Ibis table only names the
        view and its columns, so it is kept for the next table of the same name and schema (asking
        DuckDB for a view's schema is a query, and micro-batches repeat their schema)."""
        self.con.con.register(name, table)
        known = self._tables.get((name, table.schema))
        if known is None:
            known = self._tables[(name, table.schema)] = self.con.table(name)
        return known

    def unregister(self, name: str) -> None:
        try:
            self.con.con.unregister(name)
        except Exception:  # already gone
            log.debug("unregister failed", table=name)

    def close(self) -> None:
        try:
            self.con.disconnect()
        except Exception:  # closing twice is harmless
            log.debug("disconnect failed")


def ref_table_name(obj: str) -> str:
    return f"{_REF_PREFIX}{obj}"
