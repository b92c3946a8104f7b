"""Portal pages. Plain server-rendered HTML (no build step); each page refreshes itself."""

from __future__ import annotations

from collections import defaultdict
from html import escape

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shopops.bootstrap import Platform
from shopops.events.model import is_cdc_topic
from shopops.events.monitor import CdcMonitor
from shopops.inventory.bursts import OUTCOMES_FILE
from shopops.portal import data, models
from shopops.portal.layout import page

router = APIRouter(include_in_schema=False)
router.include_router(data.router)
router.include_router(models.router)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    platform: Platform = request.app.state.platform
    topics = platform.events.topics()
    by_region: dict[str, int] = defaultdict(int)
    for t in topics:
        if is_cdc_topic(t.name):
            by_region[t.name.split(".", 1)[0]] += t.messages
    total = sum(by_region.values())
    lag = 0
    if CdcMonitor.group_id in platform.events.groups():
        lag = sum(p.lag for p in platform.events.lag(CdcMonitor.group_id))
    cards = "".join(
        f"<div class=card>{label}<b class={cls}>{value}</b></div>"
        for label, value, cls in (
            ("change events", f"{total:,}", ""),
            ("topics", f"{len(topics):,}", ""),
            ("regions", ", ".join(sorted(by_region)) or "-", ""),
            ("CDC monitor lag", f"{lag:,}", "bad" if lag else "ok"),
        )
    )
    widest = max((t.messages for t in topics), default=1) or 1
    rows = "".join(
        f"<tr><td><a href='/v1/events/topics/{escape(t.name)}/records?limit=20'>{escape(t.name)}</a></td>"
        f"<td class=n>{t.partitions}</td><td class=n>{t.messages:,}</td>"
        f"<td><div class=bar style='width:{max(1, round(200 * t.messages / widest))}px'></div></td></tr>"
        for t in topics
    )
    body = (
        f"<div class=cards>{cards}</div>{_reconciliation_section(platform)}{_bursts_section(platform)}"
        "<h2>Event log</h2>"
        f"<table><tr><th>topic</th><th>partitions</th><th>records</th><th></th></tr>{rows}</table>"
    )
    return page("overview", body)


def _reconciliation_section(platform: Platform) -> str:
    """Per region: orders, matched orders and exceptions by class over the stored results."""
    service = platform.reconciliation
    summary = service.summary()
    if summary.num_rows == 0:
        return ""
    from shopops.reconciliation.model import ExceptionClass, severity

    per_region: dict[str, dict[str, int]] = {}
    classes = [c.value for c in ExceptionClass]
    days = sorted({str(d) for d in summary.column("business_date").to_pylist()})
    for row in summary.to_pylist():
        acc = per_region.setdefault(row["region"], defaultdict(int))
        for key in ("orders", "matched_orders", "breaks", *classes):
            acc[key] += int(row[key])
    shown = [c for c in classes if any(acc[c] for acc in per_region.values())]
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in shown)
    rows = "".join(
        f"<tr><td>{escape(region)}</td><td class=n>{acc['orders']:,}</td>"
        f"<td class='n ok'>{acc['matched_orders']:,}</td>"
        f"<td class='n{' bad' if acc['breaks'] else ' ok'}'>{acc['breaks']:,}</td>"
        + "".join(
            f"<td class='n{'' if severity(ExceptionClass(c)) == 'info' else ' bad' if acc[c] else ''}'>"
            f"<a href='/v1/reconciliation/exceptions?regions={escape(region)}&amp;class={c}'>"
            f"{acc[c]:,}</a></td>"
            for c in shown
        )
        + "</tr>"
        for region, acc in sorted(per_region.items())
    )
    return (
        f"<h2>Reconciliation</h2><p>{escape(days[0])} to {escape(days[-1])}: every order matched against "
        "the providers' payments and the ledger; each exception is classified and explained "
        "(<a href='/v1/reconciliation/exceptions'>all exceptions</a>, "
        "<a href='/v1/reconciliation/export?format=csv'>CSV</a>).</p>"
        f"<table><tr><th>region</th><th>orders</th><th>matched</th><th>breaks</th>{head}</tr>{rows}</table>"
    )


def _bursts_section(platform: Platform) -> str:
    """The demo's checkout bursts: what the legacy checkout oversold, what shopops sold."""
    path = platform.settings.home / OUTCOMES_FILE
    if not path.is_file():
        return ""
    bursts = orjson.loads(path.read_bytes())
    legacy = sum(b["legacy_oversold"] for b in bursts)
    ours = sum(b["shopops_oversold"] for b in bursts)
    rows = "".join(
        f"<tr><td>{escape(b['burst_id'])}</td>"
        f"<td><a href='/v1/inventory/{escape(b['sku'])}'>{escape(b['sku'])}</a></td>"
        f"<td class=n>{b['units_available']}</td><td class=n>{b['attempts']}</td>"
        f"<td class='n{' bad' if b['legacy_oversold'] else ''}'>{b['legacy_accepted']}</td>"
        f"<td class='n{' bad' if b['shopops_oversold'] else ' ok'}'>{b['shopops_accepted']}</td></tr>"
        for b in bursts
    )
    return (
        f"<h2>Checkout bursts for the last units</h2><p>{len(bursts)} bursts: the legacy checkout oversold "
        f"<b class=bad>{legacy}</b> units; shopops reservations oversold <b class={'bad' if ours else 'ok'}>"
        f"{ours}</b>.</p><table><tr><th>burst</th><th>sku</th><th>units on shelf</th><th>carts racing</th>"
        f"<th>legacy sold</th><th>shopops sold</th></tr>{rows}</table>"
    )
