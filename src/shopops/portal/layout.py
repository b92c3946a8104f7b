"""The portal's page frame: style, navigation, and the page and error responses."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

from shopops import __version__

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24;background:#f6f8fa}
h1{margin:0 0 .2rem}h2{margin-top:2rem}.muted{color:#57606a}
nav{margin-bottom:1.2rem}nav a{margin-right:1rem;font-weight:600}
table{border-collapse:collapse;background:#fff;min-width:40rem}
th,td{padding:.35rem .8rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#54aeff;height:.7rem;border-radius:2px}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{background:#fff;padding:1rem 1.4rem;border:1px solid #d0d7de;
border-radius:6px}.card b{display:block;font-size:1.6rem}.bad{color:#cf222e}.ok{color:#1a7f37}
.warn{color:#9a6700}.tag{display:inline-block;padding:0 .4rem;border-radius:1rem;background:#ddf4ff;
font-size:.85em}.tag.pii{background:#ffebe9}ul.tree{list-style:none;padding-left:1.2rem;
border-left:1px dashed #d0d7de}ul.tree li{margin:.2rem 0}.job{color:#8250df}
article.card{max-width:60rem}
"""

#: The portal's pages, in the order the navigation shows them.
NAV = (("/", "Overview"), ("/data", "Data"), ("/models", "Models"))


def page(title: str, body: str, *, refresh: bool = True, status_code: int = 200) -> HTMLResponse:
    """A whole portal page; ``refresh`` reloads it every 5 s (live pages)."""
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    nav = "".join(f"<a href='{href}'>{label}</a>" for href, label in NAV)
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} · shopops</title>"
        f"{meta}<style>{STYLE}</style></head><body>"
        f"<h1>shopops</h1><p class=muted>v{__version__} · <a href=/docs>API docs</a> · "
        f"<a href=/metrics>metrics</a> · <a href=/readyz>readiness</a></p><nav>{nav}</nav>"
        f"{body}</body></html>",
        status_code=status_code,
    )


def error_page(title: str, message: str, hint: str | None, status_code: int) -> HTMLResponse:
    """A portal page saying what went wrong and what to do."""
    more = f"<p class=muted>{escape(hint)}</p>" if hint else ""
    return page(
        title,
        f"<h2>{escape(title)}</h2><p class=bad>{escape(message)}</p>{more}",
        refresh=False,
        status_code=status_code,
    )


def when(ms: int | None) -> str:
    """A millisecond timestamp as a UTC minute, for tables."""
    if not ms:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
