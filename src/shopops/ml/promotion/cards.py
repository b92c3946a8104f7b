"""Model cards: what a model is for, what it learned from, how well it does where, and its limits.

A card is generated for every registered version as JSON (for machines: the catalog, the gates)
and Markdown (for people), and kept with the model in the run's artifacts (``card/``).
"""

from __future__ import annotations

import math
from typing import Any

CARD_DIR = "card"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
#: Sections a card must have to pass the promotion gate.
REQUIRED = ("intended_use", "data", "metrics", "per_region", "shap", "limitations", "owner")


def build_card(
    *,
    name: str,
    version: int,
    run_id: str,
    use_case: Any,
    metadata: dict[str, Any],
    owner: str,
) -> dict[str, Any]:
    """The card of one version, from the use case's prose and the training run's metadata."""
    return {
        "model": name,
        "version": version,
        "run_id": run_id,
        "owner": owner,
        "intended_use": use_case.intended_use,
        "limitations": use_case.limitations,
        "data": {
            "source": metadata["source"],
            "data_versions": metadata["data_versions"],
            "features": metadata["features"],
            "label": metadata["label"],
            "rows": metadata["rows"],
            "holdout": metadata["holdout"],
        },
        "training": {"seed": metadata["seed"], "params": metadata["params"], "tuned": metadata["tuned"]},
        "metrics": metadata["evaluation"]["metrics"],
        "primary_metric": metadata["evaluation"]["primary"],
        "truth": metadata["truth_check"],
        "per_region": metadata["evaluation"]["per_region"],
        "shap": metadata["shap"][:10],
    }


def missing_sections(card: dict[str, Any] | None) -> list[str]:
    """Required sections absent or empty in ``card`` (all of them when there is no card)."""
    if not card:
        return list(REQUIRED)
    return [key for key in REQUIRED if not card.get(key)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    lines = [
        f"# Model card: {card['model']} v{card['version']}",
        "",
        f"Owner: **{card['owner']}** · MLflow run `{card['run_id']}`",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Data",
        "",
        f"- Source: {card['data']['source']}",
        f"- Label: `{card['data']['label']}`; rows: {card['data']['rows']}",
        f"- Holdout: {card['data']['holdout']}",
        "- Data versions: "
        + (
            ", ".join(f"`{k}` = {v}" for k, v in sorted(card["data"]["data_versions"].items()))
            or "none recorded"
        ),
        f"- Features ({len(card['data']['features'])}): "
        + ", ".join(f"`{f}`" for f in card["data"]["features"]),
        "",
        "## Metrics (holdout)",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(card["metrics"].items())]
    truth = card["truth"]
    lines += [
        "",
        f"Against the simulator's truth: {truth['metric']} = {_fmt(truth['value'])} "
        f"(bound {truth['bound']}, {'met' if truth['ok'] else 'NOT met'}).",
        "",
        "## Metrics per region",
        "",
    ]
    regions = card["per_region"]
    names = sorted({k for m in regions.values() for k in m})
    lines += ["| region | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for region, metrics in sorted(regions.items()):
        lines.append(f"| {region} | " + " | ".join(_fmt(metrics.get(n, float("nan"))) for n in names) + " |")
    lines += [
        "",
        "## What drives it (mean absolute SHAP, holdout)",
        "",
        "| feature | mean abs | mean |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r['feature']} | {_fmt(r['mean_abs'])} | {_fmt(r['mean'])} |" for r in card["shap"]]
    lines += ["", "## Limitations", "", card["limitations"], ""]
    return "\n".join(lines)
