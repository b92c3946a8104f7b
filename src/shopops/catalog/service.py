"""The catalog service: register datasets, record lineage, answer what is where and what feeds what.

Other slices use it two ways:

- **registration** — :meth:`CatalogService.register_dataset` (a feature view, a model, a report
  registers itself with its owner and links), :meth:`~CatalogService.sync` (the platform's topics,
  row schemas and lake tables), :meth:`~CatalogService.register_lake_tables`;
- **lineage** — :meth:`~CatalogService.record_run` after a job ran, or the context manager
  :meth:`~CatalogService.run` around it. Each run becomes OpenLineage START and COMPLETE (or FAIL)
  events, stored with the lineage edges in the catalog and queued for the configured transport.
  Recording never fails the job: a problem is logged and counted.

Datasets named by a job but not registered yet are registered on the spot from their names
(:func:`~shopops.catalog.model.describe_name`) with the contract's and the personal-data tags'
annotations, or the documented defaults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import Counter, Gauge, Histogram

from shopops.catalog.contracts import ContractInfo, load_contracts
from shopops.catalog.model import (
    DEFAULT_OWNER,
    PRODUCER,
    Column,
    ColumnEdge,
    Dataset,
    DatasetKind,
    Edge,
    Flow,
    Job,
    LineageGraph,
    LineageNode,
    Run,
    RunState,
    Sensitivity,
    check_depth,
    check_name,
    describe_name,
    lake_table_name,
    merge_columns,
    near_misses,
    new_dataset,
)
from shopops.catalog.port import CatalogStore, LineageTransport, RunEventRecord, UpsertCounts
from shopops.catalog.sync import Namespaces, Progress, SyncSources, discover
from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.logging import get_logger

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

log = get_logger("shopops.catalog")

DATASETS = Gauge("shopops_catalog_datasets", "Datasets registered in the catalog", ["kind"])
RUN_EVENTS = Counter("shopops_catalog_run_events_total", "Lineage run events recorded", ["job", "state"])
LINEAGE_FAILURES = Counter(
    "shopops_catalog_lineage_failures_total", "Job runs whose lineage could not be recorded", ["job"]
)
SENT = Counter(
    "shopops_catalog_openlineage_sent_total", "OpenLineage events sent by outcome", ["transport", "outcome"]
)
PENDING = Gauge("shopops_catalog_openlineage_pending", "OpenLineage events stored but not sent yet")
SYNC_SECONDS = Histogram(
    "shopops_catalog_sync_duration_seconds",
    "Wall time of a catalog sync",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
)

#: Personal-data tags of the governance plane: dataset (``db.table``) -> column -> ``pii``/``secret``.
TagSource = Callable[[], Mapping[str, Mapping[str, str]]]
#: Where the personal-data tags are said to come from, in column ``sources``.
TAGS_SOURCE = "policies/data.toml"
DatasetRef = str | Dataset


@dataclass(frozen=True)
class SyncReport:
    """What a sync found and changed."""

    counts: dict[str, int]
    registered: UpsertCounts
    contracts: int
    contract_problems: list[str]
    problems: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "created": self.registered.created,
            "updated": self.registered.updated,
            "unchanged": self.registered.unchanged,
            "contracts": self.contracts,
            "contract_problems": self.contract_problems,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FlushReport:
    sent: int
    failed: int
    pending: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "pending": self.pending, "error": self.error}


@dataclass
class LineageView:
    """The lineage of one dataset: trees upstream and/or downstream, and its column lineage."""

    dataset: str
    depth: int
    upstream: LineageNode | None
    downstream: LineageNode | None
    columns: list[ColumnEdge]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "depth": self.depth,
            "upstream": self.upstream.to_dict() if self.upstream else None,
            "downstream": self.downstream.to_dict() if self.downstream else None,
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass
class RunHandle:
    """What a job adds to its run while it runs (see :meth:`CatalogService.run`)."""

    run_id: str
    job: str
    inputs: list[DatasetRef]
    outputs: list[DatasetRef]
    parameters: dict[str, Any] = field(default_factory=dict)
    column_lineage: list[ColumnEdge] = field(default_factory=list)
    output_rows: dict[str, int] = field(default_factory=dict)

    def add_input(self, dataset: DatasetRef) -> None:
        self.inputs.append(dataset)

    def add_output(self, dataset: DatasetRef, rows: int | None = None) -> None:
        self.outputs.append(dataset)
        if rows is not None:
            self.output_rows[dataset if isinstance(dataset, str) else dataset.name] = rows


Direction = Literal["upstream", "downstream", "both"]


def _envelope_sensitivity(
    columns: Sequence[Column], logical: str, known: Sequence[Column]
) -> tuple[Column, ...]:
    """Bronze keeps each change event whole in ``value``: the column is as sensitive as the most
    sensitive column of the rows it carries (and nothing masks it there)."""
    personal = [c for c in known if c.sensitivity.personal]
    if not personal:
        return tuple(columns)
    top = max((c.sensitivity for c in personal), key=lambda s: s.rank)
    names = ", ".join(dict.fromkeys(c.name for c in personal))
    sources = tuple(dict.fromkeys(src for c in personal for src in c.sources))
    return tuple(
        replace(
            c,
            sensitivity=top,
            description=c.description or f"the change event as received: rows of {logical}, with {names}",
            sources=sources,
        )
        if c.name == "value"
        else c
        for c in columns
    )


class CatalogService:
    """Datasets and their lineage over a :class:`CatalogStore` and a :class:`LineageTransport`."""

    def __init__(
        self,
        store: CatalogStore,
        transport: LineageTransport,
        namespaces: Namespaces,
        *,
        contracts_dir: Path | None = None,
        tags: TagSource | None = None,
        default_owner: str = DEFAULT_OWNER,
        retry_interval_s: float = 30.0,
        producer: str = PRODUCER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.transport = transport
        self.namespaces = namespaces
        self.contracts_dir = contracts_dir
        self._tags = tags or (lambda: {})
        self.default_owner = default_owner
        self.retry_interval_s = retry_interval_s
        self.producer = producer
        self._clock = clock
        self._contracts: dict[str, ContractInfo] | None = None
        self._contract_problems: list[str] = []
        self._flush_lock = threading.Lock()
        self._last_failure = 0.0
        self._lake_last: dict[tuple[str, ...], float] = {}
        self._lake_records: dict[tuple[str, ...], int] = {}

    def close(self) -> None:
        """Try once more to send what is queued (briefly), then release the store and transport."""
        try:
            self.flush(limit=200)
        except Exception as exc:  # closing must not fail; what is not sent stays queued
            log.warning("OpenLineage events left queued", error=str(exc))
        self.transport.close()
        self.store.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- annotations: contracts and personal-data tags ------------------------------------------

    def contracts(self, reload: bool = False) -> dict[str, ContractInfo]:
        """The contracts by dataset (``db.table``), read once and again on ``reload``."""
        if self._contracts is None or reload:
            if self.contracts_dir is None:
                self._contracts, self._contract_problems = {}, []
            else:
                self._contracts, self._contract_problems = load_contracts(self.contracts_dir)
        return self._contracts

    def annotate(self, ds: Dataset, contracts: Mapping[str, ContractInfo] | None = None,
                 tags: Mapping[str, Mapping[str, str]] | None = None) -> Dataset:  # fmt: skip
        """``ds`` with what its contract and the personal-data tags say (by its ``db.table``):
        owner, domain, SLA, retention, description and column sensitivity. Fields neither gives
        keep their value; a column tagged ``pii``/``secret`` is marked masked."""
        logical = describe_name(ds.name).logical
        if logical is None:
            return ds
        contract = (contracts if contracts is not None else self.contracts()).get(logical)
        tagged = (tags if tags is not None else self._tags()).get(logical, {})
        defaulted = list(ds.defaulted)
        changes: dict[str, Any] = {}
        if contract is not None:
            for name, value in (
                ("owner", contract.owner),
                ("sla", contract.sla),
                ("retention", contract.retention),
            ):
                if value:
                    changes[name] = value
                    if name in defaulted:
                        defaulted.remove(name)
            if contract.domain:
                changes["domain"] = contract.domain
            if contract.description and not ds.description:
                changes["description"] = contract.description
            changes["contract"] = contract.path
        tag_columns = [
            Column(
                name=column,
                sensitivity=Sensitivity.SECRET if tag == "secret" else Sensitivity.PII,
                masked=True,
                sources=(TAGS_SOURCE,),
            )
            for column, tag in tagged.items()
        ]
        contract_columns = contract.columns if contract is not None else ()
        if ds.columns:
            # The store's own columns decide which exist; contracts and tags add what they know.
            known = {c.name for c in ds.columns}
            extra = [c for c in (*contract_columns, *tag_columns) if c.name in known]
            columns = merge_columns(ds.columns, extra)
        else:
            columns = merge_columns(contract_columns, tag_columns)
        if ds.kind is DatasetKind.BRONZE:
            columns = _envelope_sensitivity(columns, logical, [*contract_columns, *tag_columns])
        return replace(ds, columns=columns, defaulted=tuple(defaulted), **changes)

    # --- registration ---------------------------------------------------------------------------

    def new(self, name: str, **fields: Any) -> Dataset:
        """A dataset named ``name`` with its namespace, annotations and the documented defaults;
        ``fields`` are any of :class:`Dataset`'s (owner, kind, sla, links, columns...)."""
        kind = fields.pop("kind", None)
        if isinstance(kind, str):
            kind = DatasetKind(kind)
        namespace = fields.pop("namespace", None) or self.namespaces.for_kind(
            kind or describe_name(name).kind
        )
        ds = new_dataset(name, namespace, kind=kind, **fields)
        if "owner" in ds.defaulted:
            ds = replace(ds, owner=self.default_owner)
        return self.annotate(ds)

    def register(self, datasets: Sequence[Dataset]) -> UpsertCounts:
        """Register (create or replace) ``datasets``; equal registrations change nothing."""
        for ds in datasets:
            check_name(ds.name)
        counts = self.store.upsert_datasets(list(datasets), self._now_ms())
        self._refresh_gauge()
        return counts

    def register_dataset(self, name: str, *, registered_by: str = "api", **fields: Any) -> Dataset:
        """Register one dataset (a feature view, a model, a report...) and return it as stored::

        catalog.register_dataset("models.fraud", owner="risk-ml", description="...",
                                 links={"model_card": "mlflow://models/fraud/3"})
        """
        ds = self.new(name, registered_by=registered_by, **fields)
        existing = self.store.get_dataset(name)
        if existing is not None:
            ds = replace(ds, links={**existing.links, **ds.links})
        self.register([ds])
        return self.dataset(name)

    def ensure(self, refs: Sequence[DatasetRef], registered_by: str = "lineage") -> list[Dataset]:
        """The datasets named, registering those the catalog does not know yet (a :class:`Dataset`
        given whole is registered as given if missing)."""
        wanted: list[Dataset] = []
        for ref in refs:
            wanted.append(self.new(ref, registered_by=registered_by) if isinstance(ref, str) else ref)
        if not wanted:
            return []
        self.store.upsert_datasets(wanted, self._now_ms(), only_missing=True)
        stored = self.store.get_datasets([d.name for d in wanted])
        return [stored.get(ds.name, ds) for ds in wanted]

    def dataset(self, name: str) -> Dataset:
        """The dataset called ``name``; an unknown name is a :class:`NotFoundError` with near misses."""
        ds = self.store.get_dataset(name)
        if ds is None:
            raise self._unknown(name)
        return ds

    def _unknown(self, name: str, what: str = "dataset", known: Sequence[str] | None = None) -> NotFoundError:
        names = list(known) if known is not None else self.store.dataset_names()
        close = near_misses(name, names)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "`shopops catalog list` shows what is registered; `shopops catalog sync` registers "
            "the platform's topics and tables"
        )
        return NotFoundError(f"no {what} named {name!r} in the catalog", hint=hint, suggestions=close)

    def datasets(self, kind: DatasetKind | None = None, domain: str | None = None) -> list[Dataset]:
        """Registered datasets, sorted by name (of one kind, of one domain)."""
        return self.store.list_datasets(kind, domain)

    def _refresh_gauge(self) -> None:
        try:
            counts: dict[str, int] = dict.fromkeys((k.value for k in DatasetKind), 0)
            for ds in self.store.list_datasets():
                counts[ds.kind.value] += 1
            for kind, n in counts.items():
                DATASETS.labels(kind).set(n)
        except Exception as exc:  # a metric must never fail a registration
            log.debug("catalog gauge not refreshed", error=str(exc))

    # --- sync -----------------------------------------------------------------------------------

    def sync(self, sources: SyncSources, progress: Progress | None = None) -> SyncReport:
        """Register what the sources hold, annotated by the contracts and the personal-data tags.

        Idempotent: a second sync over unchanged sources changes nothing. A dataset's description
        and links set by another registration are kept.
        """
        started = time.perf_counter()
        found = discover(sources, self.namespaces, progress)
        contracts = self.contracts(reload=True)
        tags = self._tags()
        datasets: list[Dataset] = []
        for ds in found.datasets.values():
            annotated = self.annotate(ds, contracts, tags)
            existing = self.store.get_dataset(ds.name)
            if existing is not None:
                annotated = replace(
                    annotated,
                    description=annotated.description or existing.description,
                    links={**existing.links, **annotated.links},
                )
            datasets.append(annotated)
        if progress:
            progress("register", 0, len(datasets))
        counts = self.register(datasets)
        matched = {describe_name(name).logical for name in self.store.dataset_names()}
        unmatched = sorted(set(contracts) - matched)
        seconds = time.perf_counter() - started
        SYNC_SECONDS.observe(seconds)
        report = SyncReport(
            counts={**found.counts, "datasets": len(datasets)},
            registered=counts,
            contracts=len(contracts),
            contract_problems=[
                *self._contract_problems,
                *(
                    f"contract of {name}: no topic or table of that dataset is registered"
                    for name in unmatched
                ),
            ],
            problems=found.problems,
            seconds=seconds,
        )
        log.info("catalog sync", **report.to_dict())
        return report

    def register_lake_tables(self, lake: Catalog) -> SyncReport:
        """Register every table of the lake's Iceberg catalog (bronze, silver, quarantine...)."""
        return self.sync(SyncSources(lake=lake))

    # --- lineage --------------------------------------------------------------------------------

    def record_run(
        self,
        job: str,
        inputs: Sequence[DatasetRef],
        outputs: Sequence[DatasetRef],
        *,
        column_lineage: Sequence[ColumnEdge] = (),
        facets: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        error: str | None = None,
        description: str = "",
        output_rows: Mapping[str, int] | None = None,
        run_id: str | None = None,
    ) -> Run | None:
        """Record one finished run of ``job``: inputs → job → outputs (START, then COMPLETE, or FAIL
        with ``error``). Returns the stored run, or ``None`` if it could not be recorded (logged)."""
        from openlineage.client.uuid import generate_new_uuid

        run_id = run_id or str(generate_new_uuid())
        now = datetime.now(UTC)
        try:
            inputs, outputs = self.ensure(inputs), self.ensure(outputs)
            self._event(
                RunState.START, run_id, job, inputs, outputs, started_at or now, description=description,
                parameters=facets, resolved=True,
            )  # fmt: skip
            final = RunState.FAIL if error is not None else RunState.COMPLETE
            self._event(
                final, run_id, job, inputs, outputs, ended_at or now, column_lineage=column_lineage,
                parameters=facets, error=error, description=description, output_rows=output_rows,
                resolved=True,
            )  # fmt: skip
        except Exception as exc:  # lineage must never fail the job that ran
            LINEAGE_FAILURES.labels(job).inc()
            log.error("lineage not recorded", job=job, run_id=run_id, error=str(exc))
            return None
        self.flush()
        return self.store.get_run(run_id)

    @contextmanager
    def run(
        self,
        job: str,
        inputs: Sequence[DatasetRef],
        outputs: Sequence[DatasetRef],
        *,
        description: str = "",
        facets: Mapping[str, Any] | None = None,
    ) -> Iterator[RunHandle]:
        """Record a run around the block: START on entry, COMPLETE on exit, FAIL if it raises (the
        exception goes on). The block may add inputs, outputs, row counts and column lineage::

            with catalog.run("lake.silver", inputs=["vn.shop.orders"], outputs=[]) as run:
                rows = build()
                run.add_output("silver.vn__shop__orders", rows=rows)
        """
        from openlineage.client.uuid import generate_new_uuid

        handle = RunHandle(str(generate_new_uuid()), job, list(inputs), list(outputs), dict(facets or {}))
        self._safe_event(RunState.START, handle, description)
        try:
            yield handle
        except BaseException as exc:
            # An exception is a failed run; an interruption (Ctrl-C, shutdown) an aborted one.
            state = RunState.FAIL if isinstance(exc, Exception) else RunState.ABORT
            self._safe_event(state, handle, description, error=f"{type(exc).__name__}: {exc}")
            raise
        self._safe_event(RunState.COMPLETE, handle, description)

    def _safe_event(
        self, state: RunState, handle: RunHandle, description: str, error: str | None = None
    ) -> None:
        try:
            self._event(
                state, handle.run_id, handle.job, handle.inputs, handle.outputs, datetime.now(UTC),
                column_lineage=handle.column_lineage, parameters=handle.parameters, error=error,
                description=description, output_rows=handle.output_rows,
            )  # fmt: skip
        except Exception as exc:  # lineage must never fail the job that runs
            LINEAGE_FAILURES.labels(handle.job).inc()
            log.error("lineage not recorded", job=handle.job, run_id=handle.run_id, error=str(exc))
            return
        if state.terminal:
            self.flush()

    def _event(
        self,
        state: RunState,
        run_id: str,
        job: str,
        inputs: Sequence[DatasetRef],
        outputs: Sequence[DatasetRef],
        at: datetime,
        *,
        column_lineage: Sequence[ColumnEdge] = (),
        parameters: Mapping[str, Any] | None = None,
        error: str | None = None,
        description: str = "",
        output_rows: Mapping[str, int] | None = None,
        resolved: bool = False,
    ) -> bool:
        """Store one event of a run (``resolved``: the datasets are registered ones already)."""
        # Imported here: the OpenLineage client costs most of a second to import, and reading the
        # catalog (CLI, API) never needs it.
        from shopops.catalog.lineage_events import run_event

        check_name(job)
        ins = [d for d in inputs if isinstance(d, Dataset)] if resolved else self.ensure(inputs)
        outs = [d for d in outputs if isinstance(d, Dataset)] if resolved else self.ensure(outputs)
        at_ms = int(at.timestamp() * 1000)
        payload = run_event(
            state=state,
            event_time=at,
            run_id=run_id,
            job=job,
            job_namespace=self.namespaces.default,
            inputs=ins,
            outputs=outs,
            column_lineage=column_lineage,
            parameters=parameters,
            output_rows=output_rows,
            description=description,
            error=error,
            producer=self.producer,
        )
        run = Run(
            run_id=run_id,
            job=job,
            state=state,
            started_at_ms=at_ms if state is RunState.START else None,
            ended_at_ms=at_ms if state.terminal else None,
            inputs=tuple(d.name for d in ins),
            outputs=tuple(d.name for d in outs),
            facets={**(parameters or {}), **({"output_rows": dict(output_rows)} if output_rows else {})},
            error=error,
        )
        edges = (*(Edge(job, d.name, "in") for d in ins), *(Edge(job, d.name, "out") for d in outs))
        # Flows are known when the run ends: an output with column lineage was written from the
        # inputs its columns name; any other output, from every input of the run.
        sources: dict[str, set[str]] = {}
        for col in column_lineage:
            sources.setdefault(col.out_dataset, set()).add(col.in_dataset)
        flows = tuple(
            Flow(job, i.name, o.name)
            for o in outs
            for i in ins
            if state.terminal and i.name in sources.get(o.name, {i.name})
        )
        stored = self.store.record_event(
            RunEventRecord(
                run=run,
                event_type=state,
                job=Job(job, self.namespaces.default, description),
                edges=edges,
                flows=flows,
                column_edges=tuple(column_lineage),
                payload=payload,
                event_time_ms=at_ms,
            ),
            self._now_ms(),
        )
        if stored:
            RUN_EVENTS.labels(job, state.value).inc()
        return stored

    def flush(self, limit: int = 1000, force: bool = False) -> FlushReport:
        """Send queued OpenLineage events through the transport, oldest first.

        After a failed send, further attempts wait ``retry_interval_s`` (unless ``force``), so an
        endpoint that is down costs one timeout per interval, not one per run.
        """
        if not force and self._clock() - self._last_failure < self.retry_interval_s:
            return FlushReport(0, 0, self._pending())
        if not self._flush_lock.acquire(blocking=force):
            return FlushReport(0, 0, self._pending())
        sent = failed = 0
        error: str | None = None
        try:
            while True:
                batch = self.store.claim_pending(
                    min(limit - sent, 200), lease_ms=60_000, now_ms=self._now_ms()
                )
                if not batch:
                    break
                done: list[int] = []
                for i, event in enumerate(batch):
                    try:
                        self.transport.send([event.payload])
                    except Exception as exc:  # keep it queued; the next flush retries it
                        error = str(exc)
                        self.store.mark_sent(done, self._now_ms())
                        self.store.mark_failed([e.seq for e in batch[i:]], error, self._now_ms())
                        failed = len(batch) - i
                        sent += len(done)
                        self._last_failure = self._clock()
                        SENT.labels(self.transport.kind, "failed").inc()
                        log.warning("OpenLineage events not sent", to=self.transport.describe(), error=error)
                        return FlushReport(sent, failed, self._pending(), error)
                    done.append(event.seq)
                    SENT.labels(self.transport.kind, "sent").inc()
                self.store.mark_sent(done, self._now_ms())
                sent += len(done)
                if sent >= limit:
                    break
            self._last_failure = 0.0
            return FlushReport(sent, failed, self._pending(), error)
        finally:
            self._flush_lock.release()

    def _pending(self) -> int:
        count = self.store.pending_count()
        PENDING.set(count)
        return count

    def lineage(self, name: str, direction: Direction = "both", depth: int = 3) -> LineageView:
        """The lineage of ``name`` as trees (``upstream``, ``downstream`` or ``both``), ``depth``
        levels of datasets each way, and the column lineage into and out of it."""
        check_depth(depth)
        if direction not in ("upstream", "downstream", "both"):
            raise InvalidInputError(
                f"unknown direction {direction!r}", hint="use upstream, downstream or both"
            )
        graph = LineageGraph(self.store.edges(), self.store.flows())
        if self.store.get_dataset(name) is None and name not in graph.datasets():
            raise self._unknown(name)
        return LineageView(
            dataset=name,
            depth=depth,
            upstream=graph.tree(name, "upstream", depth) if direction in ("upstream", "both") else None,
            downstream=graph.tree(name, "downstream", depth) if direction in ("downstream", "both") else None,
            columns=self.store.column_edges(name),
        )

    def runs(self, job: str | None = None, dataset: str | None = None, limit: int = 50) -> list[Run]:
        """The latest runs, newest first (of one job; touching one dataset)."""
        if not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit {limit} is out of range", hint="give a limit from 1 to 1000")
        if job is not None and job not in {j.name for j in self.store.jobs()}:
            raise self._unknown(job, "job", [j.name for j in self.store.jobs()])
        if dataset is not None and self.store.get_dataset(dataset) is None:
            raise self._unknown(dataset)
        return self.store.runs(job, dataset, limit)

    def get_run(self, run_id: str) -> Run:
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id!r} in the catalog", hint="`shopops catalog runs` lists them")
        return run

    def jobs(self) -> list[Job]:
        return self.store.jobs()

    # --- the lake -------------------------------------------------------------------------------

    def record_lake_ingest(
        self,
        topics: Sequence[str],
        layers: Sequence[str] = ("bronze",),
        *,
        records: int | None = None,
        job: str = "lake.ingest",
        min_interval_s: float = 60.0,
        lake: Catalog | None = None,
    ) -> Run | None:
        """Record that ``job`` moved ``topics`` into their tables of ``layers`` (``bronze``,
        ``silver``, ``quarantine``): one run per call, at most one per ``min_interval_s`` for the
        same topics and layers (calls in between add their ``records`` to the next run).

        Silver columns get column lineage from the topic's columns of the same name. With ``lake``
        (the Iceberg catalog), tables the catalog does not know yet are registered first, with
        their columns. Returns the run, or ``None`` when throttled or not recorded.
        """
        key = (job, *sorted(topics), "|", *layers)
        self._lake_records[key] = self._lake_records.get(key, 0) + (records or 0)
        now = self._clock()
        if now - self._lake_last.get(key, float("-inf")) < min_interval_s:
            return None
        self._lake_last[key] = now
        total = self._lake_records.pop(key, 0)
        outputs = [lake_table_name(layer, topic) for topic in topics for layer in layers]
        if lake is not None:
            known = set(self.store.dataset_names())
            if any(o not in known for o in outputs):
                try:
                    self.register_lake_tables(lake)
                except Exception as exc:  # lineage goes on with what the names say
                    log.warning("lake tables not registered", error=str(exc))
        columns: list[ColumnEdge] = []
        for topic in topics:
            source = self.store.get_dataset(topic)
            source_cols = {c.name for c in source.columns} if source else set()
            if not source_cols:
                continue
            for layer in layers:
                if layer != "silver":
                    continue
                target = self.store.get_dataset(lake_table_name(layer, topic))
                if target is None:
                    continue
                columns.extend(
                    ColumnEdge(topic, col.name, target.name, col.name)
                    for col in target.columns
                    if col.name in source_cols
                )
        return self.record_run(
            job,
            list(topics),
            outputs,
            column_lineage=columns,
            facets={"records": total} if records is not None else None,
            description="CDC change events of the event log into the lake's Iceberg tables",
        )
