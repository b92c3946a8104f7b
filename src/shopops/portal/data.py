"""Portal pages of the data plane: contracts and their latest checks, the catalog, lineage trees."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shopops.catalog.model import Dataset, DatasetKind, LineageNode
from shopops.core.errors import ShopopsError
from shopops.portal.layout import error_page, page, when

router = APIRouter(include_in_schema=False)

#: Deepest lineage a page draws (the API allows the same).
MAX_DEPTH = 10


def _lineage_link(name: str) -> str:
    return f"<a href='/lineage/{quote(name, safe='')}'>{escape(name)}</a>"


@router.get("/data", response_class=HTMLResponse)
def data_page(request: Request) -> HTMLResponse:
    """Contracts with their latest whole-table check, and the catalog's datasets by kind."""
    from shopops.quality.api import quality_service

    platform = request.app.state.platform
    try:
        quality = quality_service(request)
        contracts = quality.contracts()
        latest = {r["dataset"]: r for r in quality.latest("table")}
        datasets = platform.catalog.datasets()
    except ShopopsError as exc:
        return error_page("Data", exc.message, exc.hint, exc.http_status)
    by_kind: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets:
        by_kind[ds.kind.value].append(ds)
    from shopops.lake.silver import region_and_dataset

    silver_of: dict[str, list[str]] = defaultdict(list)
    for ds in by_kind.get(DatasetKind.SILVER.value, []):
        split = region_and_dataset(ds.name.split(".", 1)[-1])
        if split is not None:
            silver_of[split[1]].append(ds.name)
    failing = [d for d, r in latest.items() if r["outcome"] != "passed"]
    cards = "".join(
        f"<div class=card>{label}<b class={cls}>{value}</b></div>"
        for label, value, cls in (
            ("data contracts", f"{len(contracts):,}", ""),
            ("checked (whole table)", f"{len(latest):,}", ""),
            ("failing a check", f"{len(failing):,}", "bad" if failing else "ok"),
            ("catalogued datasets", f"{len(datasets):,}", ""),
        )
    )
    return page(
        "data", f"<div class=cards>{cards}</div>{_contracts(contracts, latest, silver_of)}{_catalog(by_kind)}"
    )


def _contracts(
    contracts: list[Any], latest: dict[str, dict[str, Any]], silver_of: dict[str, list[str]]
) -> str:
    if not contracts:
        return "<h2>Data contracts</h2><p class=muted>No data contracts in the contracts folder.</p>"
    rows = []
    for c in sorted(contracts, key=lambda c: c.dataset):
        s = c.summary()
        run = latest.get(c.dataset)
        if run is None:
            checked = "<td colspan=5 class=muted>not checked yet</td>"
        else:
            ok = run["outcome"] == "passed"
            checked = (
                f"<td>{when(run['finished_at_ms'])}</td><td class=n>{run['rows_checked']:,}</td>"
                f"<td class='n{'' if not run['rows_failed'] else ' bad'}'>{run['rows_failed']:,}</td>"
                f"<td class='n{' bad' if run['checks_failed'] else ''}'>{run['checks_failed']} / "
                f"{run['checks_total']}</td><td class={'ok' if ok else 'bad'}>"
                f"<a href='/v1/quality/runs/{quote(run['run_id'])}'>{escape(run['outcome'])}</a></td>"
            )
        tables = " ".join(_lineage_link(n) for n in sorted(silver_of.get(c.dataset, [])))
        pii = "".join(f"<span class='tag pii'>{escape(p)}</span> " for p in s["pii_columns"])
        rows.append(
            f"<tr><td><a href='/v1/quality/contracts/{quote(c.dataset)}'>{escape(c.dataset)}</a></td>"
            f"<td>{escape(s['owner'] or '-')}</td><td>{escape(str(s['version']))}</td>"
            f"<td>{escape(s['freshness'] or '-')}</td><td>{pii or '-'}</td>{checked}"
            f"<td>{tables or '-'}</td></tr>"
        )
    return (
        "<h2>Data contracts</h2><p>Each contract's newest whole-table check (every check of the contract "
        "over the lake table); the outcome links to every check's result and the failing rows.</p>"
        "<table><tr><th>dataset</th><th>owner</th><th>version</th><th>freshness SLA</th><th>PII columns</th>"
        "<th>checked</th><th>rows</th><th>rows failed</th><th>checks failed</th><th>outcome</th>"
        f"<th>silver tables (lineage)</th></tr>{''.join(rows)}</table>"
    )


def _catalog(by_kind: dict[str, list[Dataset]]) -> str:
    if not by_kind:
        return "<h2>Catalog</h2><p class=muted>The catalog is empty: `shopops catalog sync` fills it.</p>"
    sections = []
    for kind in DatasetKind:
        found = sorted(by_kind.get(kind.value, []), key=lambda d: d.name)
        if not found:
            continue
        rows = "".join(
            f"<tr><td>{_lineage_link(d.name)}</td><td>{escape(d.owner)}</td>"
            f"<td>{escape(d.domain or '-')}</td>"
            f"<td>{escape(d.sla or '-')}</td><td>{escape(d.residency or '-')}</td>"
            f"<td class=n>{len(d.personal_columns)}</td></tr>"
            for d in found
        )
        sections.append(
            f"<details><summary><b>{escape(kind.value)}</b> — {len(found):,}</summary>"
            "<table><tr><th>dataset</th><th>owner</th><th>domain</th><th>SLA</th><th>residency</th>"
            "<th>personal columns</th></tr>"
            f"{rows}</table></details>"
        )
    return "<h2>Catalog</h2><p>Every registered dataset by kind; a name opens its lineage.</p>" + "".join(
        sections
    )


@router.get("/lineage/{name}", response_class=HTMLResponse)
def lineage_page(request: Request, name: str, depth: int = 3) -> HTMLResponse:
    """One dataset: what the catalog knows of it, and its lineage upstream and downstream."""
    catalog = request.app.state.platform.catalog
    if not 1 <= depth <= MAX_DEPTH:
        return error_page(
            "Lineage", f"depth must be between 1 and {MAX_DEPTH}, not {depth}", "e.g. ?depth=3", 422
        )
    try:
        view = catalog.lineage(name, "both", depth)
        try:
            ds: Dataset | None = catalog.dataset(name)
        except ShopopsError:
            ds = None  # known from lineage only
    except ShopopsError as exc:
        return error_page("Lineage", exc.message, exc.hint, exc.http_status)
    facts, dataset_columns = (
        _facts(ds) if ds is not None else ("<p class=muted>Known from lineage only (not registered).</p>", "")
    )
    trees = "".join(
        f"<h2>{label}</h2>"
        + (_tree(node) if node is not None and node.children else f"<p class=muted>{empty}</p>")
        for label, node, empty in (
            ("Upstream — where it comes from", view.upstream, "No recorded job writes it."),
            ("Downstream — what is made from it", view.downstream, "No recorded job reads it."),
        )
    )
    columns = ""
    if view.columns:
        rows = "".join(
            f"<tr><td>{_lineage_link(e.in_dataset)}</td><td>{escape(e.in_column)}</td>"
            f"<td>{_lineage_link(e.out_dataset)}</td><td>{escape(e.out_column)}</td></tr>"
            for e in view.columns
        )
        columns = (
            "<h2>Column lineage</h2><table><tr><th>from dataset</th><th>column</th><th>to dataset</th>"
            f"<th>column</th></tr>{rows}</table>"
        )
    deeper = min(MAX_DEPTH, depth + 2)
    more = f"<p class=muted>{depth} levels each way; <a href='?depth={deeper}'>deeper</a>.</p>"
    return page(
        f"lineage of {name}",
        f"<h2>{escape(name)}</h2>{facts}{trees}{more}{dataset_columns}{columns}",
        refresh=False,
    )


def _facts(ds: Dataset) -> tuple[str, str]:
    """The dataset's catalog entry, and its columns with their sensitivity."""
    rows = "".join(
        f"<tr><th>{label}</th><td>{escape(str(value))}</td></tr>"
        for label, value in (
            ("kind", ds.kind.value),
            ("owner", ds.owner),
            ("domain", ds.domain or "-"),
            ("SLA", ds.sla or "-"),
            ("retention", ds.retention or "-"),
            ("residency", ds.residency or "-"),
            ("data contract", ds.contract or "-"),
            ("schema subject", ds.schema_subject or "-"),
            ("description", ds.description or "-"),
        )
    )
    cols = ""
    if ds.columns:
        cols = (
            "<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>sensitivity</th><th>masked</th></tr>"
            + "".join(
                f"<tr><td>{escape(c.name)}</td><td>{escape(c.type or '-')}</td><td><span class='tag"
                f"{' pii' if c.sensitivity.personal else ''}'>{escape(c.sensitivity.value)}</span></td>"
                f"<td>{'yes' if c.masked else ''}</td></tr>"
                for c in ds.columns
            )
            + "</table>"
        )
    return f"<table>{rows}</table>", cols


def _tree(node: LineageNode) -> str:
    """A lineage tree as nested lists: datasets link to their own page, jobs are named."""
    items = []
    for child in node.children:
        label = (
            _lineage_link(child.name)
            if child.kind == "dataset"
            else f"<span class=job>⚙ {escape(child.name)}</span>"
        )
        if child.seen:
            label += " <span class=muted>(shown above)</span>"
        if child.truncated:
            label += " <span class=muted>…</span>"
        items.append(f"<li>{label}{_tree(child) if child.children else ''}</li>")
    return f"<ul class=tree>{''.join(items)}</ul>"
