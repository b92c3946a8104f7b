"""The feature store's use cases: apply the repository, materialize, training frames, online features.

Training and serving depend on this module only::

    service = build_features(settings)          # shopops.bootstrap
    service.apply()                             # entities, views, push sources, feature services
    service.materialize()                       # lake -> Parquet (offline) -> online store
    tf = service.training_frame("fraud")        # point-in-time correct, through Feast
    service.online_features("fraud", {"customer_id": ..., "device_id": ..., "card_fingerprint": ...})

Feast is imported on first use, never at import time. Feast writes the online store (apply,
materialize, push); online reads go straight to the rows Feast wrote (one round trip, decoded with
Feast's own helpers) unless ``direct_reads`` is off, when they go through ``get_online_features``.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shopops.core.logging import get_logger
from shopops.domain.regions import parse_regions
from shopops.ml.features.model import (
    ENTITIES,
    USE_CASE_DEFS,
    USE_CASES,
    VIEW_BY_NAME,
    VIEWS,
    ApplyReport,
    MaterializeReport,
    OnlineFeatures,
    TrainingFrame,
    UseCaseDef,
    derive_frame,
    derive_values,
    parse_request,
    push_source_name,
    use_case,
    views_of,
)
from shopops.ml.features.port import OnlineReader, OnlineStoreBackend

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from pyiceberg.catalog import Catalog

    from shopops.events.port import EventLog

__all__ = [
    "USE_CASES",
    "ApplyReport",
    "FeatureService",
    "MaterializeReport",
    "OnlineFeatures",
    "TrainingFrame",
]

log = get_logger("shopops.ml.features")

ONLINE_LATENCY = Histogram(
    "shopops_features_online_seconds",
    "Online feature retrieval time per request",
    ["use_case"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
ONLINE_MISSING = Counter(
    "shopops_features_online_missing_total", "Features without an online value, per use case", ["use_case"]
)
ROWS_PUSHED = Counter("shopops_features_pushed_rows_total", "Rows pushed to the online store", ["view"])
MATERIALIZED_ROWS = Counter(
    "shopops_features_materialized_rows_total", "Rows derived into the offline store", ["view"]
)

#: ``progress(done, total, step)`` after each step of a materialization.
Progress = Callable[[int, int, str], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_local = threading.local()


class _ThreadQuietStream:
    """Wraps ``sys.stdout``/``sys.stderr``: drops what a thread writes inside :func:`_quiet`.

    Only the calling thread is silenced: the server's other threads keep writing their logs.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if getattr(_local, "depth", 0):
            return len(text)
        written: int = self._stream.write(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints its own progress (colours, tqdm bars): keep it out of ours and of the logs."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, _ThreadQuietStream):
            setattr(sys, name, _ThreadQuietStream(current))
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


class FeatureService:
    """The feature store of one Feast project.

    ``catalog`` opens the lake's Iceberg catalog; ``event_log`` opens the event log (the stock view's
    history comes from the reservation engine's events); ``truth_dir`` holds the simulator's ground
    truth, joined into training frames as labels and truth columns.
    """

    def __init__(
        self,
        *,
        project: str,
        repo_dir: Path,
        online_store: OnlineStoreBackend,
        catalog: Callable[[], Catalog],
        event_log: Callable[[], contextlib.AbstractContextManager[EventLog]] | None = None,
        truth_dir: Path | None = None,
        direct_reads: bool = True,
    ) -> None:
        self.project = project
        self.repo_dir = repo_dir
        self.data_dir = repo_dir / "data"
        self.online_store = online_store
        self._catalog = catalog
        self._event_log = event_log
        self.truth_dir = truth_dir
        self._store: FeatureStore | None = None
        self._store_lock = threading.Lock()
        # Feast's SQLite online store shares one connection between threads: reads and writes of
        # this process take turns (each is well under a millisecond). Redis clients pool connections.
        self._online_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if online_store.type_name == "sqlite" else contextlib.nullcontext()
        )
        self._services: dict[str, Any] = {}
        self._applied = False
        self.direct_reads = direct_reads
        self._reader: OnlineReader | None = None
        self._reader_lock = threading.Lock()

    # --- Feast ---------------------------------------------------------------------------------

    @property
    def store(self) -> FeatureStore:
        """The Feast ``FeatureStore`` (built on first use)."""
        with self._store_lock:
            if self._store is None:
                from shopops.ml.features.repo import open_store

                self._store = open_store(self.project, self.repo_dir, self.online_store.feast_config())
            return self._store

    def _lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        """Materializations take the repository exclusively; training-frame reads share it."""

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            self.repo_dir.mkdir(parents=True, exist_ok=True)
            with open(self.repo_dir / ".lock", "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

        return held()

    # --- apply ---------------------------------------------------------------------------------

    def apply(self) -> ApplyReport:
        """Register the entities, sources, feature views and feature services (idempotent)."""
        with self._lock(exclusive=True):  # one writer of the registry file at a time
            return self._apply()

    def _apply(self) -> ApplyReport:
        from shopops.ml.features.repo import definitions

        started = time.perf_counter()
        self.online_store.check()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        objects = definitions(self.data_dir)
        with self._online_lock, _quiet():
            self.store.apply(objects)
        self._applied = True
        self._services.clear()
        # Table names come from the registry: the next read builds its reader anew.
        self._reader = None
        return ApplyReport(
            project=self.project,
            entities=[e.name for e in ENTITIES],
            feature_views=[v.name for v in VIEWS],
            push_sources=[push_source_name(v.name) for v in VIEWS if v.push],
            feature_services=list(USE_CASES),
            online_store=self.online_store.describe(),
            registry=str(self.repo_dir / "registry.db"),
            seconds=time.perf_counter() - started,
        )

    def _ensure_applied(self) -> None:
        if self._applied:
            return
        try:
            with _quiet():
                names = {fv.name for fv in self.store.list_feature_views()}
        except Exception:  # no registry file yet: Feast raises its own error types
            names = set()
        if names >= {v.name for v in VIEWS}:
            self._applied = True
        else:
            self.apply()

    # --- materialize ---------------------------------------------------------------------------

    def materialize(
        self,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
        regions: list[str] | None = None,
    ) -> MaterializeReport:
        """Derive the offline data from the lake and load the online store with values as of ``end``.

        ``end`` defaults to the newest change event read (the data's own clock: the simulated world
        lives in its own time). One materialization at a time per repository; training frames wait
        for a running one to finish.
        """
        from shopops.ml.features.derive import (
            ENTITY_FILES,
            MANIFEST,
            derive,
            read_manifest,
            write_manifest,
            write_parquet,
        )
        from shopops.ml.features.repo import data_path

        if end is not None and end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        codes = [r.code for r in parse_regions(regions)] if regions else None
        total = 3 + len(VIEWS)
        report = progress or (lambda done, total, step: None)
        with self._lock(exclusive=True):
            self._apply()  # a batch job: keep the registry in step with this version's definitions
            report(0, total, "reading the lake")
            started = time.perf_counter()
            catalog = self._catalog()
            events_cm = self._event_log() if self._event_log is not None else contextlib.nullcontext(None)
            with events_cm as event_log:
                derived = derive(catalog, regions=codes, event_log=event_log, truth_dir=self.truth_dir)
            if not derived.regions or not derived.data_versions:
                raise NotFoundError(
                    "the lake has no bronze tables to derive features from",
                    hint="ingest the CDC topics first: `shopops lake ingest` (or run `shopops up`)",
                )
            report(1, total, "writing the offline store")
            for name, table in derived.views.items():
                write_parquet(table, data_path(self.data_dir, name))
                MATERIALIZED_ROWS.labels(name).inc(table.num_rows)
            for case, table in derived.entities.items():
                write_parquet(table, self.data_dir / ENTITY_FILES[case])
            clock = _moment(derived.clock_us)
            until = end or clock
            previous = read_manifest(self.data_dir / MANIFEST) or {}
            derive_seconds = time.perf_counter() - started
            report(2, total, "loading the online store")
            started = time.perf_counter()
            stock_until = end or _moment(derived.stock_clock_us)
            for i, view in enumerate(VIEWS):
                report(2 + i, total, f"loading {view.name}")
                # Each source up to its own newest event (the stock events run on the wall clock,
                # the lake on the time of the change events), unless an end was given.
                view_until = stock_until if view.name == "stock_availability" else until
                with self._online_lock, _quiet():
                    self.store.materialize(_EPOCH, view_until, feature_views=[view.name])
            load_seconds = time.perf_counter() - started
            write_manifest(
                self.data_dir / MANIFEST,
                {
                    # The push worker re-pushes its state when this changes (materialization may
                    # have written older values over newer pushed ones).
                    "generation": int(previous.get("generation", 0)) + 1,
                    "end": until.isoformat(),
                    "clock": clock.isoformat(),
                    "regions": derived.regions,
                    "data_versions": {k: str(v) for k, v in derived.data_versions.items()},
                    "rows": {k: t.num_rows for k, t in derived.views.items()},
                    "entities": {k: t.num_rows for k, t in derived.entities.items()},
                    "materialized_at": datetime.now(UTC).isoformat(),
                },
            )
            report(total, total, "done")
        result = MaterializeReport(
            end=until,
            rows={k: t.num_rows for k, t in derived.views.items()},
            entities={k: t.num_rows for k, t in derived.entities.items()},
            data_versions=derived.data_versions,
            regions=derived.regions,
            derive_seconds=derive_seconds,
            load_seconds=load_seconds,
        )
        log.info(
            "features materialized", **{k: v for k, v in result.to_dict().items() if k != "data_versions"}
        )
        return result

    def manifest(self) -> dict[str, Any] | None:
        """What the last materialization wrote (``None`` before the first)."""
        from shopops.ml.features.derive import MANIFEST, read_manifest

        return read_manifest(self.data_dir / MANIFEST)

    # --- training ------------------------------------------------------------------------------

    def feature_names(self, use_case_name: str) -> list[str]:
        """The model features of a use case, in the order training frames and online rows carry them."""
        return list(use_case(use_case_name).features)

    def training_frame(self, use_case_name: str, *, regions: list[str] | None = None) -> TrainingFrame:
        """A point-in-time correct training set through Feast's historical retrieval.

        One row per labelled entity (fraud: every order with a label; ETA: every delivered
        shipment), features as of the row's ``event_timestamp`` and never later.
        """
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from shopops.ml.features.derive import ENTITY_FILES

        case = use_case(use_case_name)
        codes = [r.code for r in parse_regions(regions)] if regions else None
        self._ensure_applied()
        with self._lock(exclusive=False):
            manifest = self.manifest()
            path = self.data_dir / ENTITY_FILES[case.name]
            if manifest is None or not path.is_file():
                raise NotFoundError(
                    "the offline store has no data yet",
                    hint="run `shopops features materialize` first",
                )
            table = pq.read_table(path)
            if codes is not None:
                table = table.filter(pc.is_in(table.column("region"), value_set=_strings(codes)))
            table = table.filter(pc.is_valid(table.column(case.label)))
            if table.num_rows == 0:
                where = f" in {', '.join(codes)}" if codes else ""
                raise NotFoundError(
                    f"no labelled {case.name} rows{where}",
                    hint="materialize after the lake holds orders and deliveries, with the simulator's "
                    "ground truth in $SHOPOPS_HOME/truth for fraud labels",
                )
            entity_df = table.to_pandas()
            with _quiet():
                service = self.store.get_feature_service(case.name)
                job = self.store.get_historical_features(
                    entity_df=entity_df, features=service, full_feature_names=True
                )
                frame = job.to_df()
        frame = _training_columns(case, derive_frame(case, frame))
        versions = {k: int(v) for k, v in manifest.get("data_versions", {}).items()}
        return TrainingFrame(frame, case.label, case.truth, list(case.features), versions)

    # --- online --------------------------------------------------------------------------------

    def _feature_service(self, case: UseCaseDef) -> Any:
        found = self._services.get(case.name)
        if found is None:
            with _quiet():
                found = self.store.get_feature_service(case.name)
            self._services[case.name] = found
        return found

    def online_features(self, use_case_name: str, entity: Mapping[str, str]) -> OnlineFeatures:
        """The use case's features for one entity from the online store.

        ``entity`` holds the use case's join keys (fraud: ``customer_id``, ``device_id``,
        ``card_fingerprint``, optionally ``order_id``; ETA: ``carrier``, ``route``, optionally
        ``shipment_id``, ``order_id``) and optionally ``event_timestamp`` (ISO-8601 or epoch ms), the
        time derived features are computed at (default: now). Views whose keys are not given come
        back as missing.
        """
        started = time.perf_counter()
        case = use_case(use_case_name)
        request = parse_request(case, entity, int(time.time() * 1000))
        self._ensure_applied()
        given = request.keys.keys()
        wanted = [view for view, keys in _views(case.name) if keys <= given]
        fetched: dict[str, float | None] = {}
        if wanted:
            reader = self._direct_reader()
            if reader is not None:
                fetched = self._read_direct(reader, case, wanted, request.keys)
            else:
                fetched = self._read_feast(case, wanted, request.keys)
        values = derive_values(case, fetched, request.at_ms)
        missing = [name for name, value in values.items() if value is None]
        missing_total, latency = _metrics(case.name)
        if missing:
            missing_total.inc(len(missing))
        latency.observe(time.perf_counter() - started)
        return OnlineFeatures(values, missing)

    def open_online(self) -> None:
        """Open the Feast store and the online reader now (imports Feast: about a second), so the
        first online request does not pay for it."""
        self._ensure_applied()
        if self.direct_reads:
            self._direct_reader()
            _decode(b"")  # the decoding helpers are imported on first use

    def _read_feast(
        self, case: UseCaseDef, wanted: Sequence[str], keys: Mapping[str, str]
    ) -> dict[str, float | None]:
        """The ``wanted`` views' values through Feast's ``get_online_features``."""
        features: Any
        if len(wanted) == len(views_of(case)):
            features = self._feature_service(case)
        else:
            features = [ref for ref in case.refs if ref.split(":", 1)[0] in wanted]
        row = {k: v for k, v in keys.items() if any(k in VIEW_BY_NAME[w].join_keys for w in wanted)}
        try:
            with self._online_lock:
                result = self.store.get_online_features(
                    features=features, entity_rows=[row], full_feature_names=True
                ).to_dict()
        except Exception as exc:  # Feast wraps connection failures in many types
            if isinstance(exc, InvalidInputError | NotFoundError):
                raise
            raise BackendUnavailableError(
                f"the online store ({self.online_store.describe()}) failed: {exc}",
                hint="check the online store, or re-run `shopops features apply`",
            ) from exc
        fetched: dict[str, float | None] = {}
        for name in _fetched_names(case):
            values = result.get(name)
            value = values[0] if values else None
            fetched[name] = None if value is None else float(value)
        return fetched

    def _direct_reader(self) -> OnlineReader | None:
        if not self.direct_reads:
            return None
        reader = self._reader
        if reader is None:
            with self._reader_lock:
                reader = self._reader
                if reader is None:
                    with _quiet():
                        reader = self.online_store.reader(
                            self.store, {v.name: v.feature_names for v in VIEWS}
                        )
                    if reader is None:  # this store is read through Feast
                        self.direct_reads = False
                        return None
                    self._reader = reader
        return reader

    def _read_direct(
        self, reader: OnlineReader, case: UseCaseDef, wanted: Sequence[str], keys: Mapping[str, str]
    ) -> dict[str, float | None]:
        """What ``get_online_features`` returns for ``wanted`` views, read from the rows Feast wrote.

        The views have no TTL (``repo.py``), so the value stored is the value served, as in Feast.
        """
        lookups = [(view, _entity_key(_JOIN_KEYS[view], keys)) for view in wanted]
        try:
            stored = reader.read(lookups)
        except Exception as exc:  # sqlite3 and redis-py errors alike: the store did not answer
            raise BackendUnavailableError(
                f"the online store ({self.online_store.describe()}) failed: {exc}",
                hint="check the online store, or re-run `shopops features apply`",
            ) from exc
        fetched: dict[str, float | None] = {}
        for view, values in zip(wanted, stored, strict=True):
            for feature, name in _view_refs(case.name, view):
                blob = values.get(feature)
                fetched[name] = None if blob is None else _decode(blob)
        return fetched

    def push(self, view: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write rows of a push view to the online store (latest value per key wins)."""
        import pandas as pd
        from feast.data_source import PushMode

        definition = VIEW_BY_NAME.get(view)
        if definition is None or not definition.push:
            pushable = ", ".join(v.name for v in VIEWS if v.push)
            raise InvalidInputError(f"{view!r} is not a push view", hint=f"push views: {pushable}")
        if not rows:
            return 0
        self._ensure_applied()
        frame = pd.DataFrame(list(rows), columns=list(definition.columns))
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        with self._online_lock, _quiet():
            self.store.push(push_source_name(view), frame, to=PushMode.ONLINE)
        ROWS_PUSHED.labels(view).inc(len(rows))
        return len(rows)

    # --- inspection ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The repository as data: views with their keys, features and sources; use cases."""
        manifest = self.manifest() or {}
        rows = manifest.get("rows", {})
        return {
            "project": self.project,
            "repo_dir": str(self.repo_dir),
            "online_store": self.online_store.describe(),
            "materialized": manifest.get("end"),
            "views": [
                {
                    "name": v.name,
                    "keys": list(v.join_keys),
                    "features": list(v.feature_names),
                    "push": v.push,
                    "source": v.source,
                    "rows": rows.get(v.name),
                }
                for v in VIEWS
            ],
            "use_cases": {
                name: {
                    "keys": list(case.required_keys),
                    "optional_keys": list(case.optional_keys),
                    "features": list(case.features),
                    "label": case.label,
                    "truth": case.truth,
                }
                for name, case in USE_CASE_DEFS.items()
            },
        }

    def close(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
            self._reader = None
        with self._store_lock:
            self._store = None


def _moment(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC) if us > 0 else _EPOCH


@cache
def _fetched_names(case: UseCaseDef) -> tuple[str, ...]:
    return tuple(ref.replace(":", "__") for ref in case.refs)


_JOIN_KEYS = {v.name: v.join_keys for v in VIEWS}


# Keyed by the use case's name: hashing the definition itself hashes every field.
@cache
def _views(case: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """The use case's views, each with the set of its join keys."""
    return tuple((view, frozenset(_JOIN_KEYS[view])) for view in views_of(use_case(case)))


@cache
def _metrics(case: str) -> tuple[Any, Any]:
    """The use case's children of ``ONLINE_MISSING`` and ``ONLINE_LATENCY`` (looked up once)."""
    return ONLINE_MISSING.labels(case), ONLINE_LATENCY.labels(case)


@cache
def _view_refs(case: str, view: str) -> tuple[tuple[str, str], ...]:
    """``(feature, fetched name)`` of the use case's references to ``view``."""
    prefix = f"{view}:"
    refs = use_case(case).refs
    return tuple((ref[len(prefix) :], ref.replace(":", "__")) for ref in refs if ref.startswith(prefix))


def _entity_key(join_keys: tuple[str, ...], keys: Mapping[str, str]) -> bytes:
    """The online store's key of one view's entity: Feast's ``serialize_entity_key`` (version 3)."""
    return _serialized_key(join_keys, tuple(keys[k] for k in join_keys))


# Both caches hold pure functions of their arguments (the same key or bytes always give the same
# answer), so they never serve a stale value; they only skip rebuilding protobuf messages.
@lru_cache(maxsize=65_536)
def _serialized_key(join_keys: tuple[str, ...], values: tuple[str, ...]) -> bytes:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=list(join_keys), entity_values=[Value(string_val=v) for v in values])
    return serialize_entity_key(key, entity_key_serialization_version=3)


@lru_cache(maxsize=65_536)
def _decode(blob: bytes) -> float | None:
    """A stored ``ValueProto`` as Feast's ``get_online_features`` returns it, as a float."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    value = feast_value_type_to_python_type(Value.FromString(blob))
    return None if value is None else float(value)


def _strings(values: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def _training_columns(case: UseCaseDef, frame: pd.DataFrame) -> pd.DataFrame:
    """Entity columns, time, features in order, label, truth; rows in time order."""
    columns = [*case.entity_columns, "event_timestamp", *case.features, case.label, case.truth]
    frame = frame.sort_values(["event_timestamp", case.entity_columns[0]], kind="stable")
    frame = frame[columns].reset_index(drop=True)
    if case.label == "is_fraud":
        frame[case.label] = frame[case.label].astype("int64")
    return frame
