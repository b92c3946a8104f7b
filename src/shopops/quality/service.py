"""The data-contract use cases: lint contracts, check micro-batches and whole tables, serve results.

Contracts are the ODCS files of ``quality.contracts_dir`` (reviewed in git). The service keeps the
contracts that lint clean (a broken file is reported by ``lint`` and left out, so one bad file
does not stop the checks of the others) and reloads them when a file changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.logging import get_logger
from shopops.quality.checker import ContractChecker, ReferenceLookup
from shopops.quality.compat import check_registry
from shopops.quality.contracts import contract_files, lint_paths
from shopops.quality.model import Contract, LintIssue, RunRecord
from shopops.quality.port import ResultsStore
from shopops.quality.sources import TableSource

log = get_logger("shopops.quality")


def default_contracts_dir() -> Path:
    """``./contracts`` when it exists, else the ``contracts/`` folder of the source checkout."""
    here = Path("contracts")
    if here.is_dir():
        return here.absolute()
    checkout = Path(__file__).resolve().parents[3] / "contracts"
    return checkout if checkout.is_dir() else here.absolute()


class QualityService:
    """Contracts, checks and their stored results."""

    def __init__(
        self,
        *,
        contracts_dir: Path,
        store: ResultsStore,
        sample_limit: int = 100,
        record_passing_batches: bool = True,
        registry: Callable[[], Any] | None = None,
        subject_template: str = "{topic}-value",
    ) -> None:
        self.contracts_dir = contracts_dir
        self.store = store
        self.sample_limit = sample_limit
        self.record_passing_batches = record_passing_batches
        self._registry = registry
        self.subject_template = subject_template
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[tuple[str, float], ...], list[Contract]] | None = None

    def close(self) -> None:
        self.store.close()

    # -- contracts --------------------------------------------------------------------------------

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        files = contract_files([self.contracts_dir]) if self.contracts_dir.is_dir() else []
        return tuple((str(p), p.stat().st_mtime) for p in files)

    def contracts(self) -> list[Contract]:
        """The contracts that lint clean (reloaded when a file changes)."""
        stamp = self._stamp()
        with self._lock:
            if self._loaded is None or self._loaded[0] != stamp:
                report = lint_paths([self.contracts_dir]) if self.contracts_dir.is_dir() else None
                contracts = report.contracts if report is not None else []
                if report is not None and report.errors:
                    for issue in report.errors:
                        log.error("invalid data contract left out", issue=str(issue))
                self._loaded = (stamp, contracts)
            return list(self._loaded[1])

    def contract(self, dataset: str) -> Contract:
        for c in self.contracts():
            if c.dataset == dataset:
                return c
        raise NotFoundError(
            f"no data contract for dataset {dataset}",
            hint=f"known datasets: {', '.join(sorted(c.dataset for c in self.contracts())) or 'none'} "
            f"(contracts in {self.contracts_dir})",
        )

    def lint(
        self, paths: Sequence[Path] | None = None, *, registry: bool = False
    ) -> tuple[list[str], list[LintIssue]]:
        """Lint contract files (default: the contracts folder); with ``registry``, also check them
        against the schemas registered for their topics. Returns the files and the issues."""
        targets = list(paths) if paths else [self.contracts_dir]
        missing = [p for p in targets if not p.exists()]
        if missing:
            raise InvalidInputError(f"no such file or folder: {', '.join(map(str, missing))}")
        # Foreign keys may point at contracts outside the linted files: resolve them against the folder.
        context = [c for c in self.contracts() if not any(_same(c.source, p) for p in targets)]
        report = lint_paths(targets, context)
        issues = list(report.issues)
        if registry:
            if self._registry is None:
                raise InvalidInputError("no schema registry is configured for --registry")
            issues += check_registry(report.contracts, self._registry(), self.subject_template)
        return report.files, issues

    # -- checks -----------------------------------------------------------------------------------

    def checker(self, references: ReferenceLookup | None = None) -> ContractChecker:
        """A micro-batch checker over the current contracts that stores its runs here."""
        return ContractChecker(
            self.contracts(),
            recorder=self.record,
            references=references,
            sample_limit=self.sample_limit,
            record_passing_batches=self.record_passing_batches,
        )

    def record(self, run: RunRecord) -> None:
        """Store a run (failures to store are logged, never raised into the data path)."""
        try:
            self.store.record(run)
        except Exception as exc:  # a results store that is down must not stop ingestion
            log.error("cannot store a quality run", dataset=run.dataset, run_id=run.run_id, error=str(exc))

    def check(
        self,
        source: TableSource,
        datasets: Sequence[str] | None = None,
        *,
        regions: Sequence[str] | None = None,
        now_ms: int | None = None,
        progress: Callable[[str, RunRecord | None, Exception | None], None] | None = None,
    ) -> list[RunRecord]:
        """Check whole datasets read from ``source`` (default: every dataset with a contract).

        Each run is stored. A dataset that cannot be read is reported through ``progress`` (and
        raised when it was the only one asked for).
        """
        contracts = {c.dataset: c for c in self.contracts()}
        names = list(datasets) if datasets else sorted(contracts)
        for name in names:
            if name not in contracts:
                self.contract(name)  # raises NotFoundError naming the known datasets
        checker = ContractChecker(contracts.values(), sample_limit=self.sample_limit)
        cache: dict[str, pa.Table] = {}

        def read(dataset: str) -> pa.Table:
            if dataset not in cache:
                cache[dataset] = source.read(contracts[dataset], regions)
            return cache[dataset]

        runs: list[RunRecord] = []
        try:
            for name in names:
                try:
                    table = read(name)
                    refs: dict[str, pa.Table] = {}
                    for obj_dataset in _referenced_datasets(contracts[name], contracts):
                        try:
                            refs[obj_dataset] = read(obj_dataset)
                        except NotFoundError:
                            log.warning(
                                "referenced dataset unavailable", dataset=name, referenced=obj_dataset
                            )
                    run = checker.check_table(name, table, source=source.name, references=refs, now_ms=now_ms)
                except NotFoundError as exc:
                    if len(names) == 1:
                        raise
                    if progress is not None:
                        progress(name, None, exc)
                    continue
                self.store.record(run)
                runs.append(run)
                if progress is not None:
                    progress(name, run, None)
        finally:
            checker.close()
        return runs

    # -- results ----------------------------------------------------------------------------------

    def runs(
        self,
        dataset: str | None = None,
        *,
        mode: str | None = None,
        failed_only: bool = False,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        if mode not in (None, "batch", "table"):
            raise InvalidInputError(f"mode must be batch or table (got {mode!r})")
        if not 1 <= limit <= 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10000 (got {limit})")
        return self.store.runs(dataset, mode=mode, failed_only=failed_only, limit=limit)

    def run(self, run_id: str) -> dict[str, Any]:
        found = self.store.run(run_id)
        if found is None:
            raise NotFoundError(f"no quality run {run_id}", hint="list runs with `shopops contracts results`")
        return found

    def failures(self, run_id: str, check: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        run = self.run(run_id)
        if check is not None and check not in {c["check"] for c in run["checks"]}:
            raise NotFoundError(
                f"run {run_id} has no check {check}",
                hint=f"its checks: {', '.join(c['check'] for c in run['checks'])}",
            )
        if not 1 <= limit <= 100_000:
            raise InvalidInputError(f"limit must be between 1 and 100000 (got {limit})")
        return self.store.failures(run_id, check, limit)

    def latest(self, mode: str | None = "table") -> list[dict[str, Any]]:
        return self.store.latest(mode)

    def dataset_results(self, dataset: str, mode: str = "table") -> dict[str, Any]:
        """The newest run of ``dataset`` with every check's outcome."""
        self.contract(dataset)
        runs = self.store.runs(dataset, mode=mode, limit=1)
        if not runs:
            raise NotFoundError(
                f"dataset {dataset} has not been checked yet ({mode} runs)",
                hint=f"run `shopops contracts check {dataset}`",
            )
        return self.run(runs[0]["run_id"])


def _same(source: str, path: Path) -> bool:
    try:
        src = Path(source).resolve()
        target = path.resolve()
    except OSError:
        return False
    return src == target or target in src.parents


def _referenced_datasets(contract: Contract, contracts: dict[str, Contract]) -> list[str]:
    by_object = {c.object_name: c.dataset for c in contracts.values()}
    out: list[str] = []
    for p in contract.properties:
        for ref in p.references:
            ds = by_object.get(ref.target_object)
            if ds is not None and ds not in out:
                out.append(ds)
    return out
