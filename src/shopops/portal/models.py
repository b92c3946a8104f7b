"""Portal pages of the model registry: every model's versions, champion, metrics and card."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shopops.api.state import app_service
from shopops.core.errors import ShopopsError
from shopops.portal.layout import error_page, page, when

if TYPE_CHECKING:
    from shopops.ml.promotion.service import PromotionService

router = APIRouter(include_in_schema=False)
#: Metrics shown first when a version has them (the rest follow by name).
_FIRST = ("pr_auc", "pr_auc_ratio", "mae", "mae_ratio", "p90_coverage")


def _promotion(request: Request) -> PromotionService:
    return app_service(request, "promotion", _build_promotion)


def _build_promotion(state: Any) -> PromotionService:
    from shopops.bootstrap import build_promotion

    return build_promotion(state.platform.settings, state.platform.governance)


def _metric(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return escape(str(value))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _aliases(version: dict[str, Any], champion: int | None) -> list[str]:
    """A version's aliases; the registry's listing of versions may leave the champion's out."""
    aliases = set(version["aliases"])
    if version["version"] == champion:
        aliases.add("champion")
    return sorted(aliases)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    """Registered models: each version's holdout metrics, which one is champion, its card."""
    try:
        models = _promotion(request).list_models()
    except ShopopsError as exc:
        return error_page("Models", exc.message, exc.hint, exc.http_status)
    if not models:
        return page(
            "models",
            "<h2>Models</h2><p class=muted>No registered model yet: `shopops train fraud` "
            "registers the first (the demo trains both models a minute after start).</p>",
        )
    sections = []
    for model in models:
        name = model["name"]
        champion = model["champion"]
        keys = sorted(
            {k for v in model["versions"] for k in v["metrics"] if k != "seed"},
            key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k),
        )
        head = "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in keys)
        rows = "".join(
            f"<tr><td class=n>{v['version']}</td>"
            f"<td>{''.join(f'<span class=tag>{escape(a)}</span> ' for a in _aliases(v, champion))}</td>"
            f"<td>{when(v['created_ms'])}</td>"
            + "".join(
                f"<td class=n>{_metric(v['metrics'][k]) if k in v['metrics'] else '-'}</td>" for k in keys
            )
            + f"<td><a href='/models/{quote(name, safe='')}/card?version={v['version']}'>card</a></td></tr>"
            for v in model["versions"]
        )
        state = (
            f"champion <b class=ok>v{champion}</b>"
            if champion is not None
            else "<b class=warn>no champion</b>: nothing is served"
        )
        sections.append(
            f"<h2>{escape(name)}</h2><p>{state} · {_count(len(model['versions']), 'version')}</p>"
            f"<table><tr><th>version</th><th>aliases</th><th>registered</th>{head}<th></th></tr>{rows}</table>"
        )
    return page("models", "".join(sections))


@router.get("/models/{name}/card", response_class=HTMLResponse)
def card_page(request: Request, name: str, version: int | None = None) -> HTMLResponse:
    """A model card (Markdown rendered without raw HTML)."""
    if version is not None and version < 1:
        return error_page("Model card", f"version must be 1 or more, not {version}", None, 422)
    try:
        markdown = _promotion(request).card(name, version, "md")
    except ShopopsError as exc:
        return error_page("Model card", exc.message, exc.hint, exc.http_status)
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(str(markdown))
    return page(f"{name} card", f"<article class=card>{html}</article>", refresh=False)
