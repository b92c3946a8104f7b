"""Ports of the catalog: its store, the OpenLineage transport, and what a job records lineage with.

Store backends: ``sqlite`` (embedded, ``$SHOPOPS_HOME/catalog/catalog.db``) and ``postgres``. Every
backend passes one contract suite (``tests/integration/catalog/test_store_contract.py``). What a
store guarantees:

- a dataset registration is one statement per dataset: an equal registration changes nothing
  (not even ``updated_at_ms``), a different one replaces the record and keeps ``created_at_ms``;
- a run event is stored once per ``(run_id, event type)``, with the run's merged state, its job and
  its lineage edges, in one transaction: a repeated event (a retry after a crash, or two processes
  at once) changes nothing and is reported as such;
- the OpenLineage events waiting to be sent form an outbox: a claim leases them to one sender at
  a time, a sender that dies loses its lease and another takes them over.

Other slices record lineage through :class:`LineageRecorder` (the catalog service is one); they
import these names from here, never the catalog's backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shopops.catalog.model import ColumnEdge, Dataset, DatasetKind, Edge, Flow, Job, Run, RunState

__all__ = [
    "CatalogStore",
    "ColumnEdge",
    "LakeLineage",
    "LineageRecorder",
    "LineageTransport",
    "PendingEvent",
    "RunEventRecord",
    "UpsertCounts",
]


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.created + other.created, self.updated + other.updated, self.unchanged + other.unchanged
        )


@dataclass(frozen=True, slots=True)
class RunEventRecord:
    """One OpenLineage run event to store: the run as this event sees it, its job, its edges (job
    reads / writes dataset), its flows (output written from input) and the event as sent
    (``payload``, the OpenLineage JSON)."""

    run: Run
    event_type: RunState
    job: Job
    edges: tuple[Edge, ...]
    flows: tuple[Flow, ...]
    column_edges: tuple[ColumnEdge, ...]
    payload: Mapping[str, Any]
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An OpenLineage event stored but not sent yet (``seq`` orders them)."""

    seq: int
    run_id: str
    event_type: str
    payload: Mapping[str, Any]
    attempts: int


class CatalogStore(ABC):
    """Datasets, jobs, runs, lineage edges and the OpenLineage outbox."""

    @abstractmethod
    def upsert_datasets(
        self, datasets: Sequence[Dataset], now_ms: int, *, only_missing: bool = False
    ) -> UpsertCounts:
        """Register ``datasets``: new ones are created; changed ones replaced (``created_at_ms`` kept,
        ``updated_at_ms`` = ``now_ms``); equal ones left alone. ``only_missing``: existing datasets
        are left alone whatever they hold."""

    @abstractmethod
    def get_dataset(self, name: str) -> Dataset | None:
        """The dataset called ``name``."""

    def get_datasets(self, names: Sequence[str]) -> dict[str, Dataset]:
        """The datasets of ``names`` that exist, by name (backends answer in one query)."""
        found = {name: self.get_dataset(name) for name in names}
        return {name: ds for name, ds in found.items() if ds is not None}

    @abstractmethod
    def list_datasets(self, kind: DatasetKind | None = None, domain: str | None = None) -> list[Dataset]:
        """Datasets (of one kind, of one domain), sorted by name."""

    @abstractmethod
    def dataset_names(self) -> list[str]:
        """Every dataset name, sorted."""

    @abstractmethod
    def record_event(self, record: RunEventRecord, now_ms: int) -> bool:
        """Store one run event, its run, job, edges and column edges in one transaction; queue the
        event for sending. Returns ``False`` (and changes nothing) if the run already has an event
        of this type."""

    @abstractmethod
    def get_run(self, run_id: str) -> Run | None:
        """One run."""

    @abstractmethod
    def runs(self, job: str | None = None, dataset: str | None = None, limit: int = 50) -> list[Run]:
        """The latest runs (of one job; reading or writing one dataset), newest first."""

    @abstractmethod
    def jobs(self) -> list[Job]:
        """Every job, sorted by name."""

    @abstractmethod
    def edges(self) -> list[Edge]:
        """Every lineage edge."""

    @abstractmethod
    def flows(self) -> list[Flow]:
        """Every (job, input, output) that some run of the job read and wrote."""

    @abstractmethod
    def column_edges(self, dataset: str) -> list[ColumnEdge]:
        """Column lineage into and out of ``dataset``."""

    @abstractmethod
    def claim_pending(self, limit: int, lease_ms: int, now_ms: int) -> list[PendingEvent]:
        """Lease up to ``limit`` unsent events (oldest first) to the caller until ``now_ms + lease_ms``;
        events leased to another sender whose lease has not expired are skipped."""

    @abstractmethod
    def mark_sent(self, seqs: Sequence[int], now_ms: int) -> None:
        """The events were delivered: they leave the outbox."""

    @abstractmethod
    def mark_failed(self, seqs: Sequence[int], error: str, now_ms: int) -> None:
        """Sending failed: release the lease, count the attempt, keep the error."""

    @abstractmethod
    def pending_count(self) -> int:
        """Events not delivered yet."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class LineageTransport(ABC):
    """Sends OpenLineage events (JSON as the OpenLineage client serialises them) somewhere."""

    #: Short name for logs and metrics: ``file``, ``http``, ``none``.
    kind: str = "none"

    @abstractmethod
    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Deliver ``events`` in order; raise on the first that cannot be delivered."""

    @abstractmethod
    def describe(self) -> str:
        """Where events go, for people (no secrets)."""

    def close(self) -> None:  # noqa: B027 - most transports hold nothing to release
        """Release connections."""


class LineageRecorder(Protocol):
    """What a job records its lineage with. Recording never fails the job: problems are logged."""

    def record_run(
        self,
        job: str,
        inputs: Sequence[str | Dataset],
        outputs: Sequence[str | Dataset],
        *,
        column_lineage: Sequence[ColumnEdge] = (),
        facets: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        error: str | None = None,
        description: str = "",
        output_rows: Mapping[str, int] | None = None,
    ) -> Run | None:
        """Record one finished run of ``job`` (START and COMPLETE, or FAIL when ``error``);
        ``output_rows`` gives the rows written per output dataset."""
        ...


class LakeLineage(Protocol):
    """What the lake's ingestion worker records its lineage with (the catalog service is one)."""

    def record_lake_ingest(
        self,
        topics: Sequence[str],
        layers: Sequence[str] = ("bronze",),
        *,
        records: int | None = None,
        job: str = "lake.ingest",
        min_interval_s: float = 60.0,
        lake: Any = None,
    ) -> Run | None:
        """Record that ``topics`` went into their tables of ``layers`` (throttled; see the service)."""
        ...
