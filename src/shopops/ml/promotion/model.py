"""The promotion gates, pure: each takes numbers and says whether it passed and why.

A candidate version must, on the candidate's own holdout (both models scored on the same rows):
beat the champion's primary metric; be no worse than the champion in any region by more than a
margin; see live inputs that have not drifted from what it learned on; and have a model card.
Every gate is evaluated (a refusal names all that failed), then the policy decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from shopops.core.errors import ConflictError

BEATS = "beats_champion"
REGIONS = "regions"
DRIFT = "drift"
CARD = "model_card"
GATES = (BEATS, REGIONS, DRIFT, CARD)


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.name, "passed": self.passed, "detail": self.detail, "data": self.data}


class PromotionRefusedError(ConflictError):
    """A candidate failed one or more gates; the message names each one and why."""

    code = "promotion_refused"

    def __init__(self, model: str, version: int, failed: list[GateResult]) -> None:
        reasons = "; ".join(f"gate {g.name!r} failed: {g.detail}" for g in failed)
        super().__init__(
            f"{model} v{version} was not promoted: {reasons}",
            hint="retrain (`shopops train`) or fix what the gate names; "
            "`shopops models list` shows the champion",
            gates=[g.to_dict() for g in failed],
        )
        self.failed = failed


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def beats_champion(
    metric: str, candidate: float, champion: float | None, *, higher_is_better: bool, min_gain: float
) -> GateResult:
    """The candidate's primary metric is at least ``min_gain`` better than the champion's."""
    if champion is None:
        return GateResult(BEATS, True, "no champion yet", {"metric": metric, "candidate": candidate})
    gain = candidate - champion if higher_is_better else champion - candidate
    data = {
        "metric": metric,
        "candidate": candidate,
        "champion": champion,
        "gain": gain,
        "min_gain": min_gain,
    }
    if math.isnan(candidate):
        return GateResult(BEATS, False, f"the candidate's {metric} is undefined on the holdout", data)
    if math.isnan(champion) or gain >= min_gain:
        return GateResult(
            BEATS, True, f"{metric} {_fmt(candidate)} against the champion's {_fmt(champion)}", data
        )
    word = "lower" if higher_is_better else "higher"
    return GateResult(
        BEATS,
        False,
        f"{metric} {_fmt(candidate)} is {word} than the champion's {_fmt(champion)} on the same holdout"
        + (f" (a gain of at least {min_gain} is required)" if min_gain else ""),
        data,
    )


def regions_gate(
    metric: str,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    rows: dict[str, int],
    *,
    higher_is_better: bool,
    margin: float,
    relative: bool,
    min_rows: int,
) -> GateResult:
    """No region where the candidate is worse than the champion by more than ``margin``.

    ``relative``: the margin is a fraction of the champion's value (MAE), else absolute (PR-AUC).
    """
    if champion is None:
        return GateResult(REGIONS, True, "no champion yet", {"candidate": candidate})
    worse: list[str] = []
    data: dict[str, Any] = {}
    for region, value in sorted(candidate.items()):
        base = champion.get(region)
        if base is None or rows.get(region, 0) < min_rows or math.isnan(value) or math.isnan(base):
            data[region] = {"candidate": value, "champion": base, "judged": False}
            continue
        loss = (base - value) if higher_is_better else (value - base)
        allowed = margin * abs(base) if relative else margin
        data[region] = {
            "candidate": value,
            "champion": base,
            "loss": loss,
            "allowed": allowed,
            "judged": True,
        }
        if loss > allowed:
            limit = f"{margin:.0%} of it" if relative else f"{margin}"
            worse.append(
                f"{region} {metric} {_fmt(value)} against the champion's {_fmt(base)} (margin {limit})"
            )
    if worse:
        return GateResult(REGIONS, False, "worse in " + "; ".join(worse), data)
    judged = sorted(r for r, d in data.items() if d["judged"])
    return GateResult(
        REGIONS, True, f"no region worse beyond the margin ({', '.join(judged) or 'none judged'})", data
    )


def drift_gate(psi_by_feature: dict[str, float], max_psi: float, compared_with: str, rows: int) -> GateResult:
    """Every feature's population stability index within ``max_psi``."""
    over = {k: v for k, v in psi_by_feature.items() if v > max_psi}
    data = {"psi": psi_by_feature, "max_psi": max_psi, "compared_with": compared_with, "rows": rows}
    if over:
        listed = ", ".join(f"{k} (PSI {v:.2f})" for k, v in sorted(over.items(), key=lambda kv: -kv[1]))
        return GateResult(
            DRIFT, False, f"inputs drifted beyond PSI {max_psi} against {compared_with}: {listed}", data
        )
    worst = max(psi_by_feature.values(), default=0.0)
    return GateResult(DRIFT, True, f"largest PSI {worst:.3f} against {compared_with} ({rows} rows)", data)


def card_gate(missing: list[str]) -> GateResult:
    if missing:
        return GateResult(
            CARD, False, f"the model card is missing or lacks: {', '.join(missing)}", {"missing": missing}
        )
    return GateResult(CARD, True, "model card present", {})
