"""What the catalog reads from data contracts (Open Data Contract Standard v3 YAML in ``contracts/``).

Only the fields the catalog shows are read, tolerantly (the contracts' own checker lints them):

- the dataset (``<db>.<table>``): a ``dataset`` custom property, else ``name`` or ``id`` or the
  first schema object's ``physicalName`` when shaped ``db.table``, else the file name;
- owner: an ``owner`` custom property, else ``team.name`` (ODCS 3.1), else the team member whose
  role says owner (first member otherwise);
- domain: ``domain``; description: ``description.purpose`` (or a plain string);
- SLA: ``slaProperties`` other than retention (``latency 15min; availability 99.9%``);
  retention: the ``retention`` SLA property;
- per column (``schema[].properties[]``): type (``physicalType``, else ``logicalType``),
  description, and sensitivity from ``classification``, ``tags`` or ``pii``/``sensitivity``
  custom properties.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shopops.catalog.model import Column, Sensitivity

_DATASET = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_CLASSIFICATION = {
    "public": Sensitivity.PUBLIC,
    "internal": Sensitivity.INTERNAL,
    "confidential": Sensitivity.CONFIDENTIAL,
    "restricted": Sensitivity.CONFIDENTIAL,
    "sensitive": Sensitivity.CONFIDENTIAL,
    "pii": Sensitivity.PII,
    "personal": Sensitivity.PII,
    "personal_data": Sensitivity.PII,
    "secret": Sensitivity.SECRET,
}
_UNITS = {
    "d": "d", "day": "d", "days": "d",
    "h": "h", "hr": "h", "hour": "h", "hours": "h",
    "m": "min", "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "s": "s", "sec": "s", "second": "s", "seconds": "s",
    "y": "y", "yr": "y", "year": "y", "years": "y",
    "w": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_RETENTION = {"retention", "dataretention"}


@dataclass(frozen=True)
class ContractInfo:
    """The catalog's reading of one contract file."""

    dataset: str
    #: Where the contract is, as shown to people (``contracts/shop.orders.yaml``).
    path: str
    owner: str | None = None
    domain: str | None = None
    description: str | None = None
    sla: str | None = None
    retention: str | None = None
    columns: tuple[Column, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class ContractError(ValueError):
    """A contract file the catalog cannot read (it names the file and what is wrong)."""


def _custom(node: Any) -> dict[str, Any]:
    """``customProperties`` as a dict: ODCS lists ``{property, value}``; a mapping is accepted too."""
    raw = node.get("customProperties") if isinstance(node, Mapping) else None
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items()}
    out: dict[str, Any] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and item.get("property") is not None:
                out[str(item["property"])] = item.get("value")
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # ODCS description: {purpose, usage, limitations}
        for key in ("purpose", "usage"):
            if value.get(key):
                return str(value[key]).strip()
        return None
    text = str(value).strip()
    return text or None


def _dataset_of(doc: Mapping[str, Any], custom: Mapping[str, Any], path: Path) -> str:
    candidates: list[Any] = [custom.get("dataset"), doc.get("name"), doc.get("id")]
    schema = doc.get("schema")
    if isinstance(schema, list) and schema and isinstance(schema[0], Mapping):
        candidates.append(schema[0].get("physicalName"))
    stem = path.name
    for suffix in (".yaml", ".yml", ".odcs"):
        stem = stem.removesuffix(suffix)
    candidates.append(stem)
    for candidate in candidates:
        if isinstance(candidate, str) and _DATASET.match(candidate.strip()):
            return candidate.strip()
    raise ContractError(
        f"{path}: cannot tell which dataset the contract describes: give `name: <db>.<table>` "
        "(or a `dataset` custom property, or name the file <db>.<table>.yaml)"
    )


def _owner_of(doc: Mapping[str, Any], custom: Mapping[str, Any]) -> str | None:
    for key in ("owner", "dataOwner", "ownerTeam"):
        if custom.get(key):
            return str(custom[key])
    team = doc.get("team")
    members: Any = None
    if isinstance(team, Mapping):  # ODCS 3.1: {name, description, members}
        if team.get("name"):
            return str(team["name"])
        members = team.get("members")
    elif isinstance(team, list):  # ODCS 3.0: a list of members
        members = team
    if isinstance(members, list):
        people = [m for m in members if isinstance(m, Mapping)]
        owners = [m for m in people if "owner" in str(m.get("role", "")).lower()]
        for person in owners or people:
            who = person.get("username") or person.get("name")
            if who:
                return str(who)
    return None


def _amount(item: Mapping[str, Any]) -> str:
    value = item.get("value")
    unit = str(item.get("unit") or item.get("valueExt") or "").strip()
    short = _UNITS.get(unit.lower(), f" {unit}" if unit else "")
    return f"{value}{short}"


def _sla_of(doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    parts: list[str] = []
    retention: str | None = None
    for item in doc.get("slaProperties") or ():
        if not isinstance(item, Mapping) or item.get("property") is None or item.get("value") is None:
            continue
        name = str(item["property"])
        if name.lower() in _RETENTION:
            retention = _amount(item)
            continue
        element = f" ({item['element']})" if item.get("element") else ""
        parts.append(f"{name} {_amount(item)}{element}")
    return ("; ".join(parts) or None), retention


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "1")


def sensitivity_of(prop: Mapping[str, Any]) -> Sensitivity | None:
    """What a contract says of one column's sensitivity (``None``: nothing)."""
    custom = _custom(prop)
    found: list[Sensitivity] = []
    for key in ("pii", "personalData", "isPii"):
        if key in custom and _truthy(custom[key]):
            found.append(Sensitivity.PII)
    if _truthy(prop.get("pii")):
        found.append(Sensitivity.PII)
    for raw in (custom.get("sensitivity"), prop.get("classification")):
        if isinstance(raw, str) and raw.strip().lower() in _CLASSIFICATION:
            found.append(_CLASSIFICATION[raw.strip().lower()])
    tags = prop.get("tags")
    if isinstance(tags, list):
        for tag in tags:
            text = str(tag).strip().lower()
            if text in _CLASSIFICATION:
                found.append(_CLASSIFICATION[text])
    return max(found, key=lambda s: s.rank) if found else None


def _columns_of(doc: Mapping[str, Any], source: str) -> tuple[Column, ...]:
    out: list[Column] = []
    for obj in doc.get("schema") or ():
        if not isinstance(obj, Mapping):
            continue
        for prop in obj.get("properties") or ():
            if not isinstance(prop, Mapping) or not prop.get("name"):
                continue
            sensitivity = sensitivity_of(prop)
            kind = prop.get("physicalType") or prop.get("logicalType")
            out.append(
                Column(
                    name=str(prop["name"]),
                    type=str(kind) if kind else None,
                    sensitivity=sensitivity or Sensitivity.INTERNAL,
                    description=_text(prop.get("description")) or "",
                    sources=(source,) if sensitivity is not None else (),
                )
            )
    return tuple(out)


def parse_contract(doc: Any, path: Path, shown_as: str | None = None) -> ContractInfo:
    """The catalog's reading of a parsed contract document (``path`` names it in problems)."""
    if not isinstance(doc, Mapping):
        raise ContractError(f"{path}: a contract is a YAML mapping (apiVersion, kind, name, schema...)")
    custom = _custom(doc)
    shown = shown_as or str(path)
    sla, retention = _sla_of(doc)
    domain = doc.get("domain")
    return ContractInfo(
        dataset=_dataset_of(doc, custom, path),
        path=shown,
        owner=_owner_of(doc, custom),
        domain=str(domain) if domain else None,
        description=_text(doc.get("description")),
        sla=sla,
        retention=retention,
        columns=_columns_of(doc, shown),
        extra={k: v for k, v in custom.items() if isinstance(v, str | int | float | bool)},
    )


def contract_files(directory: Path) -> list[Path]:
    """The contract files under ``directory`` (``*.yaml``/``*.yml``, recursively), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_contracts(directory: Path) -> tuple[dict[str, ContractInfo], list[str]]:
    """Every readable contract under ``directory`` by dataset, and the problems of the others.

    A malformed file does not stop the others being read; two files for one dataset keep the
    first (sorted by path) and report the second.
    """
    found: dict[str, ContractInfo] = {}
    problems: list[str] = []
    for path in contract_files(directory):
        shown = f"{directory.name}/{path.relative_to(directory)}"
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{shown}: not readable YAML ({str(exc).splitlines()[0]})")
            continue
        try:
            info = parse_contract(doc, Path(shown), shown)
        except ContractError as exc:
            problems.append(str(exc))
            continue
        if info.dataset in found:
            problems.append(f"{shown}: {info.dataset} already has a contract ({found[info.dataset].path})")
            continue
        found[info.dataset] = info
    return found, problems


def default_contracts_dir() -> Path:
    """``./contracts`` when it exists, else the ``contracts/`` folder of the source checkout."""
    here = Path("contracts")
    if here.is_dir():
        return here.absolute()
    checkout = Path(__file__).resolve().parents[3] / "contracts"
    return checkout if checkout.is_dir() else here.absolute()
