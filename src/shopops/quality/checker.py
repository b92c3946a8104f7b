"""Contract checks on micro-batches (the lake's :class:`~shopops.lake.checks.BatchChecker`) and on
whole tables.

:class:`ContractChecker` holds the contracts by dataset (``<database>.<table>``). For a batch it
returns the rows that pass and the rows that fail, the latter with ``_check`` (the failing checks'
names, ``;``-separated) and ``_reason`` (why, in words); the stream keeps flowing. A dataset
without a contract passes unchecked (a new table must not stop ingestion; lint catches a missing
contract in review).

Referential integrity in a micro-batch can only be checked against what is known: the checker
checks a batch's foreign keys only when it was given a ``references`` lookup (e.g. the current
silver table of the referenced dataset); otherwise foreign keys are checked by the whole-table run,
which reads the referenced tables itself.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from shopops.core.logging import get_logger
from shopops.lake.checks import CHECK_COLUMN, REASON_COLUMN, BatchVerdict
from shopops.quality import metrics
from shopops.quality.compile import compile_checks
from shopops.quality.contracts import SQL_TABLE
from shopops.quality.engine import ROW_COLUMN, ContractRunner, DuckSession, EngineResult, ref_table_name
from shopops.quality.model import CheckSpec, Contract, Mode, RunRecord

log = get_logger("shopops.quality")

#: Gives the rows of a referenced dataset (``<database>.<table>``), or ``None`` when unknown.
ReferenceLookup = Callable[[str], pa.Table | None]
Recorder = Callable[[RunRecord], None]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _without_metadata(rows: pa.Table, contract: Contract) -> list[str]:
    """The columns the engine looks at: the contract's, plus ``_region``."""
    known = set(contract.columns) | {"_region"}
    return [c for c in rows.column_names if c in known]


class ContractChecker:
    """Checks batches and tables of the datasets it has contracts for."""

    def __init__(
        self,
        contracts: Iterable[Contract],
        *,
        recorder: Recorder | None = None,
        references: ReferenceLookup | None = None,
        sample_limit: int = 100,
        record_passing_batches: bool = True,
    ) -> None:
        self.contracts: dict[str, Contract] = {c.dataset: c for c in contracts}
        self._by_object = {c.object_name: c for c in self.contracts.values()}
        self.checks: dict[str, list[CheckSpec]] = {d: compile_checks(c) for d, c in self.contracts.items()}
        self.recorder = recorder
        self.references = references
        self.sample_limit = sample_limit
        self.record_passing_batches = record_passing_batches
        self._session: DuckSession | None = None
        self._runners: dict[str, ContractRunner] = {}
        self._warned: set[str] = set()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _runner(self, dataset: str) -> ContractRunner | None:
        runner = self._runners.get(dataset)
        if runner is not None:
            return runner
        contract = self.contracts.get(dataset)
        if contract is None:
            if dataset not in self._warned:
                self._warned.add(dataset)
                log.warning("no data contract: rows pass unchecked", dataset=dataset)
            return None
        # Kept: a runner holds the batch queries it compiled.
        runner = self._runners[dataset] = ContractRunner(contract, self.checks[dataset])
        return runner

    def _referenced(self, contract: Contract) -> dict[str, str]:
        """Referenced object name -> its dataset, for the contract's foreign keys."""
        out: dict[str, str] = {}
        for p in contract.properties:
            for ref in p.references:
                target = self._by_object.get(ref.target_object)
                if target is not None:
                    out[ref.target_object] = target.dataset
        return out

    # -- micro-batches ----------------------------------------------------------------------------

    def check_batch(self, dataset: str, rows: pa.Table) -> BatchVerdict:
        """Split a micro-batch into the rows that pass and the rows that fail (with the reason)."""
        runner = self._runner(dataset)
        empty_rejected = rows.schema.append(pa.field(CHECK_COLUMN, pa.string())).append(
            pa.field(REASON_COLUMN, pa.string())
        )
        if runner is None or rows.num_rows == 0:
            return BatchVerdict(rows, empty_rejected.empty_table())
        started = _now_ms()
        refs: dict[str, pa.Table] = {}
        if self.references is not None:
            for obj, ds in self._referenced(runner.contract).items():
                parent = self.references(ds)
                if parent is not None:
                    refs[obj] = parent
        result = self._run(runner, rows, "batch", refs, None)
        rejected_idx = sorted(result.rejected)
        passed = rows
        if rejected_idx:
            keep = np.ones(rows.num_rows, dtype=bool)
            keep[rejected_idx] = False
            passed = rows.filter(pa.array(keep))
        bad = rows.take(pa.array(rejected_idx, pa.int64()))
        checks_col = [";".join(dict.fromkeys(name for name, _ in result.rejected[i])) for i in rejected_idx]
        reasons_col = [
            "; ".join(list(dict.fromkeys(r for _, r in result.rejected[i]))[:8]) for i in rejected_idx
        ]
        rejected = bad.append_column(CHECK_COLUMN, pa.array(checks_col, pa.string())).append_column(
            REASON_COLUMN, pa.array(reasons_col, pa.string())
        )
        run = self._record(runner.contract, "batch", "batch", result, started)
        metrics.observe(run, rejected=len(rejected_idx))
        if self.recorder is not None and (
            self.record_passing_batches or rejected_idx or run.outcome != "passed"
        ):
            self.recorder(run)
        return BatchVerdict(passed, rejected)

    # -- whole tables -----------------------------------------------------------------------------

    def check_table(
        self,
        dataset: str,
        table: pa.Table,
        *,
        source: str = "arrow",
        references: Mapping[str, pa.Table] | None = None,
        now_ms: int | None = None,
    ) -> RunRecord:
        """Check a whole table (e.g. a silver table); ``references`` maps a referenced dataset to
        its table (only its key columns are used)."""
        from shopops.core.errors import NotFoundError

        runner = self._runner(dataset)
        if runner is None:
            raise NotFoundError(
                f"no data contract for dataset {dataset}",
                hint=f"known datasets: {', '.join(sorted(self.contracts))}; "
                f"add contracts/{dataset}.odcs.yaml",
            )
        started = _now_ms()
        refs: dict[str, pa.Table] = {}
        for obj, ds in self._referenced(runner.contract).items():
            if references is not None and ds in references:
                refs[obj] = references[ds]
        result = self._run(runner, table, "table", refs, now_ms)
        run = self._record(runner.contract, "table", source, result, started)
        metrics.observe(run)
        if self.recorder is not None:
            self.recorder(run)
        return run

    def _run(
        self,
        runner: ContractRunner,
        rows: pa.Table,
        mode: Mode,
        refs: Mapping[str, pa.Table],
        now_ms: int | None,
    ) -> EngineResult:
        table = rows.select(_without_metadata(rows, runner.contract))
        table = table.append_column(ROW_COLUMN, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        if self._session is None:
            self._session = DuckSession()
        session = self._session
        with session.lock:
            checked = session.register(SQL_TABLE, table)
            ref_tables: dict[str, Any] = {}
            names: list[str] = []
            try:
                for obj, parent in refs.items():
                    target = self._by_object[obj]
                    cols = [c for c in parent.column_names if c in target.columns]
                    name = ref_table_name(obj)
                    ref_tables[obj] = session.register(name, parent.select(cols))
                    names.append(name)
                return runner.run(
                    session.con,
                    mode=mode,
                    rows=rows.num_rows,
                    refs=ref_tables,
                    now_ms=now_ms,
                    sample_limit=self.sample_limit,
                    table=checked,
                )
            finally:
                for name in itertools.chain([SQL_TABLE], names):
                    session.unregister(name)

    def _record(
        self, contract: Contract, mode: Mode, source: str, result: EngineResult, started: int
    ) -> RunRecord:
        return RunRecord(
            run_id=uuid.uuid4().hex,
            dataset=contract.dataset,
            mode=mode,
            source=source,
            contract_id=contract.id,
            contract_version=contract.version,
            started_at_ms=started,
            finished_at_ms=_now_ms(),
            rows_checked=result.rows_checked,
            rows_failed=result.rows_failed,
            checks=result.outcomes,
        )
