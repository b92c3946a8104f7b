"""Personal data: column tags (until the catalog owns them) and the masking/residency service.

Other slices call :meth:`DataAccess.filter_rows` with the requester, the dataset and the region
the data resides in; each tagged column is asked of the policy engine (action ``read_pii``), and
the rows come back with the columns not permitted masked (``pii``) or removed (``secret``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from shopops.governance.errors import PolicyLoadError
from shopops.governance.model import (
    AuditEntry,
    AuditKind,
    ColumnTag,
    DatasetTags,
    Decision,
    EntityRef,
    Principal,
    mask_row,
)
from shopops.governance.policy import PolicyEngine

DATA_FILE = "data.toml"


def load_tags(path: Path) -> dict[str, DatasetTags]:
    """The ``[datasets."db.table".columns]`` tables of ``data.toml``; a bad tag names its place."""
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PolicyLoadError(f"{path}: {exc}", hint="fix the TOML syntax") from exc
    out: dict[str, DatasetTags] = {}
    for name, spec in (doc.get("datasets") or {}).items():
        columns: dict[str, ColumnTag] = {}
        for column, tag in ((spec or {}).get("columns") or {}).items():
            try:
                columns[column] = ColumnTag(tag)
            except ValueError:
                raise PolicyLoadError(
                    f"{path}: datasets.{name}.columns.{column}: unknown tag {tag!r}",
                    hint=f"use one of {', '.join(t.value for t in ColumnTag)}",
                ) from None
        out[name] = DatasetTags(name, columns)
    return out


class DataAccess:
    """Masks or removes tagged columns per the requester's roles and the data's residency."""

    def __init__(
        self,
        engine: PolicyEngine,
        tags: Mapping[str, DatasetTags],
        record: Callable[[list[AuditEntry]], None],
    ) -> None:
        self.engine = engine
        self.tags = dict(tags)
        self._record = record

    def tags_of(self, dataset: str) -> DatasetTags | None:
        return self.tags.get(dataset)

    def clearance(self, principal: Principal, dataset: str, region: str) -> dict[str, Decision]:
        """One decision per tagged column of ``dataset`` residing in ``region``."""
        tags = self.tags.get(dataset)
        if tags is None:
            return {}
        resource = EntityRef("Dataset", dataset)
        return {
            column: self.engine.decide(
                principal,
                "read_pii",
                resource,
                {"column": column, "tag": tag.value, "dataset_region": region},
            )
            for column, tag in tags.columns.items()
        }

    def filter_rows(
        self, principal: Principal, dataset: str, region: str, rows: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """``rows`` as ``principal`` may see them; the decisions are recorded in the audit trail."""
        tags = self.tags.get(dataset)
        if tags is None:
            return [dict(r) for r in rows]
        decisions = self.clearance(principal, dataset, region)
        cleared = {column: d.allowed for column, d in decisions.items()}
        out = [mask_row(r, cleared, tags.columns) for r in rows]
        self._record(
            [
                AuditEntry(
                    kind=AuditKind.DATA,
                    principal=principal.label,
                    action="read_pii",
                    resource=f'Dataset::"{dataset}"',
                    decision="allow"
                    if all(cleared.values())
                    else ("deny" if not any(cleared.values()) else "partial"),
                    reasons=tuple(sorted({r for d in decisions.values() for r in d.reasons})),
                    details={
                        "region": region,
                        "rows": len(out),
                        "clear": sorted(c for c, ok in cleared.items() if ok),
                        "masked": sorted(c for c, ok in cleared.items() if not ok),
                    },
                )
            ]
        )
        return out
