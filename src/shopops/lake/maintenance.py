"""Warehouse housekeeping: the files no kept snapshot references, deleted (``shopops lake clean``).

Every silver merge rewrites the data files holding the keys it changes, compaction rewrites a
table's files into one, and every table keeps only its last snapshots (older ones are expired
from the metadata at each commit, see :func:`shopops.lake.tables.expire_old_snapshots`). The files
that only expired snapshots referenced stay in the warehouse: pyiceberg 0.12's
``expire_snapshots`` removes snapshots from the metadata but not their files, and it has no
orphan-file removal.

:func:`clean_table` first expires all but the table's newest ``keep_snapshots`` snapshots, then
deletes every file under the table's location that the table's current metadata does not
reference — through any kept snapshot (its manifest list, manifests and their live data files),
the metadata log, or a statistics file — and that is older than ``older_than_s``. The age guards
what a worker is writing right now: a data file is written before the commit that references it
(and a commit that fails leaves its files behind); one hour by default is far longer than any
commit takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pyarrow.fs import FileSelector, FileType
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from shopops.core.errors import InvalidInputError

#: The lake's namespaces, in the order they are cleaned.
NAMESPACES = ("bronze", "silver", "quarantine")
#: Files younger than this are never deleted by default (seconds).
DEFAULT_OLDER_THAN_S = 3600.0
#: Snapshots kept per table by default (the ingestion keeps 10 to 20).
DEFAULT_KEEP_SNAPSHOTS = 10


@dataclass
class CleanReport:
    """One table: files found under its location, referenced, deleted (or to delete, in a dry
    run), and unreferenced files kept because they are young."""

    table: str
    #: Snapshots expired from the metadata.
    expired: int = 0
    files: int = 0
    referenced: int = 0
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    young: int = 0


def _path(location: str) -> str:
    """A location as the file system lists it: ``file:///a/b`` -> ``/a/b``, ``s3://b/k`` -> ``b/k``."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return parsed.path
    return f"{parsed.netloc}{parsed.path}"


def referenced_files(table: Table) -> set[str]:
    """Every file the table's current metadata references, as listed paths."""
    io = table.io
    locations: set[str] = {table.metadata_location}
    locations.update(entry.metadata_file for entry in table.metadata.metadata_log)
    locations.update(s.statistics_path for s in table.metadata.statistics)
    locations.update(s.statistics_path for s in table.metadata.partition_statistics)
    for snapshot in table.metadata.snapshots:
        locations.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            locations.add(manifest.manifest_path)
            # Entries deleted by this snapshot keep nothing alive: a kept older snapshot that
            # still reads the file lists it as added or existing.
            locations.update(
                e.data_file.file_path for e in manifest.fetch_manifest_entry(io, discard_deleted=True)
            )
    return {_path(location) for location in locations}


def expire_snapshots(table: Table, keep: int) -> int:
    """Expire all but the newest ``keep`` snapshots (the current one always stays); returns how
    many. A worker committing meanwhile wins: nothing is expired this time."""
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number or 0)
    current = table.current_snapshot()
    old = [s.snapshot_id for s in snapshots[: max(len(snapshots) - keep, 0)]]
    old = [i for i in old if current is None or i != current.snapshot_id]
    if not old:
        return 0
    try:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    except CommitFailedException:
        return 0
    return len(old)


def clean_table(
    catalog: Catalog,
    name: str,
    *,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    older_than_s: float = DEFAULT_OLDER_THAN_S,
    dry_run: bool = False,
    now: float | None = None,
) -> CleanReport:
    """Expire the old snapshots of table ``name``, then delete the files under its location that
    nothing kept references and that are older than ``older_than_s`` (``dry_run``: change
    nothing, list what would be deleted)."""
    if older_than_s < 0:
        raise InvalidInputError(f"older than {older_than_s} s is negative", hint="use 0 or more seconds")
    if keep_snapshots < 1:
        raise InvalidInputError(f"keep {keep_snapshots} snapshots: at least 1", hint="the current one stays")
    table = catalog.load_table(name)
    report = CleanReport(name)
    if not dry_run:
        report.expired = expire_snapshots(table, keep_snapshots)
        table = catalog.load_table(name)
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        raise InvalidInputError(
            f"cannot list the files of {name} with {type(io).__name__}",
            hint="the lake's catalogs use pyarrow's file IO (py-io-impl)",
        )
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    referenced = referenced_files(table)
    cutoff = (time.time() if now is None else now) - older_than_s
    for info in fs.get_file_info(FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type != FileType.File:
            continue
        report.files += 1
        if info.path in referenced:
            report.referenced += 1
            continue
        modified = info.mtime.timestamp() if info.mtime is not None else time.time()
        if modified > cutoff:
            report.young += 1
            continue
        if not dry_run:
            fs.delete_file(info.path)
        report.deleted.append(info.path)
        report.deleted_bytes += info.size or 0
    return report


def clean_lake(
    catalog: Catalog,
    *,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    older_than_s: float = DEFAULT_OLDER_THAN_S,
    dry_run: bool = False,
) -> list[CleanReport]:
    """:func:`clean_table` on every bronze, silver and quarantine table of the catalog."""
    namespaces = {n[0] for n in catalog.list_namespaces()}
    return [
        clean_table(
            catalog,
            ".".join(identifier),
            keep_snapshots=keep_snapshots,
            older_than_s=older_than_s,
            dry_run=dry_run,
        )
        for namespace in NAMESPACES
        if namespace in namespaces
        for identifier in sorted(catalog.list_tables(namespace))
    ]
