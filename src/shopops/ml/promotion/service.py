"""Promotion: candidate → gates → Cedar policy decision → ``champion`` alias moved → audit record.

Both models are scored on the candidate's holdout (the newest rows of its training frame, kept with
its run), so "beats the champion" compares like with like. A refusal at any step says which gate
or which policy refused; every attempt, refused or not, is in the hash-chained audit trail.
"""

from __future__ import annotations

import fcntl
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from shopops.core.errors import ConflictError, NotFoundError
from shopops.core.logging import get_logger
from shopops.governance.model import AuditEntry, AuditKind, EntityRef, Principal
from shopops.governance.service import GovernanceService
from shopops.ml.promotion.cards import CARD_DIR, CARD_JSON, CARD_MD, missing_sections
from shopops.ml.promotion.model import (
    DRIFT,
    GateResult,
    PromotionRefusedError,
    beats_champion,
    card_gate,
    drift_gate,
    regions_gate,
)
from shopops.ml.serving.loader import LoadedModel, load_model
from shopops.ml.serving.predlog import recent_inputs
from shopops.ml.tracking.service import CHAMPION, ModelVersionInfo, Tracking
from shopops.ml.training.model import psi

log = get_logger(__name__)

#: Fewer live predictions than this: input drift is not judged yet.
MIN_LIVE_ROWS = 200


@dataclass
class PromotionReport:
    model: str
    version: int
    previous: int | None
    gates: list[GateResult]
    decision: list[str]
    principal: str
    approvers: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "previous": self.previous,
            "gates": [g.to_dict() for g in self.gates],
            "policy_reasons": self.decision,
            "principal": self.principal,
            "approvers": self.approvers,
        }


class PromotionService:
    """Gates, policy, alias and audit for the registered models of one MLflow store."""

    def __init__(
        self,
        tracking: Tracking,
        governance: GovernanceService,
        *,
        home: Path,
        settings: Any,
        catalog_link: Any = None,
    ) -> None:
        self.tracking = tracking
        self.governance = governance
        self.home = home
        self.cfg = settings
        self.cache_dir = home / "ml" / "cache"
        self.prediction_log = home / "ml" / "predictions.db"
        #: ``catalog_link(model, version, card_uri)``: registers the card with the data catalog.
        self.catalog_link = catalog_link

    # --- reading --------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its versions, champion and key metrics."""
        out = []
        for name in self.tracking.model_names():
            champion = self.tracking.alias_version(name, CHAMPION)
            versions = self.tracking.versions(name)
            out.append(
                {
                    "name": name,
                    "champion": champion,
                    "versions": [
                        {
                            "version": v.version,
                            "created_ms": v.created_ms,
                            "aliases": list(v.aliases),
                            "run_id": v.run_id,
                            "metrics": {
                                k.removeprefix("shopops."): v.tags[k]
                                for k in v.tags
                                if k.startswith("shopops.") and k not in ("shopops.use_case", "shopops.card")
                            },
                        }
                        for v in versions
                    ],
                }
            )
        return out

    def card(self, name: str, version: int | None = None, fmt: str = "md") -> str | dict[str, Any]:
        """The model card of a version (default: the champion, else the newest)."""
        info = self._resolve(name, version)
        path = f"{CARD_DIR}/{CARD_JSON if fmt == 'json' else CARD_MD}"
        with tempfile.TemporaryDirectory(prefix="shopops-card-") as tmp:
            local = self.tracking.download(info.run_id, path, Path(tmp))
            data = local.read_bytes()
        return orjson.loads(data) if fmt == "json" else data.decode()

    def _resolve(self, name: str, version: int | None) -> ModelVersionInfo:
        if version is not None:
            return self.tracking.version(name, version)
        champion = self.tracking.alias_version(name, CHAMPION)
        if champion is not None:
            return self.tracking.version(name, champion)
        versions = self.tracking.versions(name)
        if not versions:
            raise NotFoundError(
                f"no registered model {name!r}", hint="`shopops models list`; `shopops train fraud|eta`"
            )
        return versions[0]

    # --- gates ----------------------------------------------------------------------------------

    def gates(self, name: str, version: int) -> tuple[list[GateResult], dict[str, Any]]:
        """Run every gate for ``name`` v``version`` against the current champion."""
        info = self.tracking.version(name, version)
        candidate = load_model(self.tracking, name, version, self.cache_dir)
        uc = candidate.use_case
        champion_version = self.tracking.alias_version(name, CHAMPION)
        champion: LoadedModel | None = None
        if champion_version is not None and champion_version != version:
            champion = load_model(self.tracking, name, champion_version, self.cache_dir)
        holdout = pd.read_parquet(candidate.holdout_path())
        label, truth = candidate.metadata["label"], candidate.metadata["truth"]
        cand_eval = uc.evaluation(candidate.boosters, holdout, candidate.features, label, truth)
        results: list[GateResult] = []
        champ_eval = None
        if champion is not None:
            absent = [f for f in champion.features if f not in holdout.columns]
            if absent:
                results.append(
                    GateResult(
                        "beats_champion",
                        False,
                        f"the champion v{champion.version} cannot be scored on the candidate's holdout: "
                        f"it needs {', '.join(absent)} (the feature set changed)",
                        {"absent": absent},
                    )
                )
            else:
                champ_eval = uc.evaluation(champion.boosters, holdout, champion.features, label, truth)
        if not results:
            results.append(
                beats_champion(
                    uc.primary_metric,
                    cand_eval.value,
                    champ_eval.value if champ_eval else None,
                    higher_is_better=uc.higher_is_better,
                    min_gain=self.cfg.min_gain,
                )
            )
        relative = not uc.higher_is_better
        results.append(
            regions_gate(
                uc.primary_metric,
                {r: m[uc.primary_metric] for r, m in cand_eval.per_region.items()},
                {r: m[uc.primary_metric] for r, m in champ_eval.per_region.items()} if champ_eval else None,
                cand_eval.rows_per_region,
                higher_is_better=uc.higher_is_better,
                margin=self.cfg.region_margin_mae if relative else self.cfg.region_margin_pr_auc,
                relative=relative,
                min_rows=self.cfg.region_min_rows,
            )
        )
        results.append(self._drift(candidate))
        results.append(card_gate(missing_sections(self._card_json(info))))
        floor = _floor(uc.higher_is_better)
        baseline = champ_eval.better_score() if champ_eval else floor
        evaluation = {
            "passed": all(g.passed for g in results),
            "metric": uc.primary_metric,
            "value": _finite(cand_eval.better_score(), floor),
            "baseline": _finite(baseline, floor),
        }
        return results, evaluation

    def _drift(self, candidate: LoadedModel) -> GateResult:
        """The live inputs (the newest predictions logged) against what the candidate learned on.

        With too few predictions logged the gate is not judged (it says so): a holdout is no
        stand-in, since cumulative features (orders so far, accounts per device) grow with time.
        """
        reference = candidate.metadata["reference"]
        live = recent_inputs(self.prediction_log, candidate.use_case.name, self.cfg.drift_window)
        if len(live) < MIN_LIVE_ROWS:
            return GateResult(
                DRIFT,
                True,
                f"not judged: {len(live)} live predictions logged, at least {MIN_LIVE_ROWS} needed",
                {"rows": len(live)},
            )
        sample = {
            f: np.array([row.get(f, math.nan) for row in live], dtype=float) for f in candidate.features
        }
        scores = {f: round(psi(reference[f], sample[f]), 4) for f in candidate.features}
        return drift_gate(scores, self.cfg.max_psi, "the live inputs logged", len(live))

    def _card_json(self, info: ModelVersionInfo) -> dict[str, Any] | None:
        try:
            card: dict[str, Any] = self.tracking.read_json(info.run_id, f"{CARD_DIR}/{CARD_JSON}")
        except NotFoundError:
            return None
        return card

    # --- promotion ------------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # One promotion at a time on this data directory: the alias and its history move together.
        path = self.home / "ml" / "promotion.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def promote(
        self, name: str, version: int, principal: Principal, approvers: list[str] | None = None
    ) -> PromotionReport:
        """Move ``champion`` to ``version`` if every gate passes and the policy permits it."""
        approvers = sorted(set(approvers or []))
        resource = EntityRef("Model", name)
        with self._exclusive():
            previous = self.tracking.alias_version(name, CHAMPION)
            if previous == version:
                raise ConflictError(
                    f"{name} v{version} is already the champion",
                    hint="`shopops models list` shows every version",
                )
            gates, evaluation = self.gates(name, version)
            failed = [g for g in gates if not g.passed]
            if failed:
                self.governance.record(
                    [
                        AuditEntry(
                            AuditKind.PROMOTION,
                            principal.label,
                            "promote",
                            str(resource),
                            "deny",
                            tuple(f"gate:{g.name}" for g in failed),
                            details={
                                "alias": CHAMPION,
                                "version": version,
                                "gates": [g.to_dict() for g in gates],
                            },
                        )
                    ]
                )
                raise PromotionRefusedError(name, version, failed)
            decision = self.governance.authorize_promotion(
                principal, name, alias=CHAMPION, version=version, evaluation=evaluation, approvers=approvers
            )
            self._move(name, version, previous, principal, "promote", gates)
        return PromotionReport(
            name, version, previous, gates, list(decision.reasons), principal.label, approvers
        )

    def rollback(
        self, name: str, principal: Principal, approvers: list[str] | None = None
    ) -> PromotionReport:
        """Point ``champion`` back at the version that held it before the current one.

        The version already passed its gates when it was champion; the policy still decides (as a
        promotion of that version, with approvers), and the move is audited.
        """
        approvers = sorted(set(approvers or []))
        with self._exclusive():
            current = self.tracking.alias_version(name, CHAMPION)
            history = self.tracking.champion_history(name)
            if current is None:
                raise NotFoundError(f"{name} has no champion to roll back", hint="`shopops models list`")
            earlier = [v for v in history[:-1] if v != current] if history and history[-1] == current else []
            if not earlier:
                raise ConflictError(
                    f"{name} v{current} has no earlier champion to roll back to",
                    hint="promote another version instead: `shopops models promote NAME VERSION`",
                )
            target = earlier[-1]
            decision = self.governance.authorize_promotion(
                principal,
                name,
                alias=CHAMPION,
                version=target,
                evaluation={"passed": True, "metric": "rollback", "value": 0.0, "baseline": 0.0},
                approvers=approvers,
            )
            self._move(name, target, current, principal, "rollback", [], history=history[:-1])
        return PromotionReport(name, target, current, [], list(decision.reasons), principal.label, approvers)

    def _move(
        self,
        name: str,
        version: int,
        previous: int | None,
        principal: Principal,
        action: str,
        gates: list[GateResult],
        history: list[int] | None = None,
    ) -> None:
        self.tracking.set_alias(name, version, CHAMPION)
        chain = list(history) if history is not None else [*self.tracking.champion_history(name), version]
        if not chain or chain[-1] != version:
            chain.append(version)
        self.tracking.set_champion_history(name, chain)
        card = f"{CARD_DIR}/{CARD_MD}"
        self.governance.record(
            [
                AuditEntry(
                    AuditKind.PROMOTION,
                    principal.label,
                    "move_alias",
                    str(EntityRef("Model", name)),
                    "done",
                    (action,),
                    details={
                        "alias": CHAMPION,
                        "from": previous,
                        "to": version,
                        "gates": [g.to_dict() for g in gates],
                    },
                )
            ]
        )
        if self.catalog_link is not None:
            try:
                info = self.tracking.version(name, version)
                self.catalog_link(name, version, f"runs:/{info.run_id}/{card}")
            except Exception as exc:  # the catalog is informational; the promotion stands
                log.warning("model card not linked in the catalog", model=name, error=str(exc))
        log.info(
            "champion moved",
            model=name,
            version=version,
            previous=previous,
            by=principal.label,
            action=action,
        )


def _floor(higher_is_better: bool) -> float:
    # With no champion the policy's "never regresses" compares against the worst possible value.
    return 0.0 if higher_is_better else -1e12


def _finite(value: float, floor: float) -> float:
    # An undefined metric (no positives in the holdout) counts as the worst value, never as NaN.
    return value if math.isfinite(value) else floor
