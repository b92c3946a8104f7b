"""Loading the per-region rules files (``<region>.yaml``) with errors that name file and field."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from shopops.core.errors import InvalidInputError
from shopops.reconciliation.model import RegionRules

#: The rules shipped with shopops (one file per region).
PACKAGED_RULES = Path(str(resources.files("shopops.reconciliation") / "rules"))


class RulesError(InvalidInputError):
    """A rules file is missing or malformed."""

    code = "invalid_rules"


def load_region_rules(path: Path) -> RegionRules:
    """Parse and validate one rules file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"{path}: no such rules file", hint="one <region>.yaml per region") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(doc, dict):
        raise RulesError(f"{path}: a rules file is a YAML mapping (region, version, currency, ...)")
    try:
        rules = RegionRules.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise RulesError(f"{path}: {problems}", hint="see docs/reconciliation.md for the format") from None
    if path.stem != rules.region:
        raise RulesError(f"{path}: region {rules.region!r} does not match the file name {path.name!r}")
    return rules


def load_rules(regions: Iterable[str], directory: Path | None = None) -> dict[str, RegionRules]:
    """The rules of ``regions`` from ``directory`` (default: the packaged rules)."""
    base = directory or PACKAGED_RULES
    if not base.is_dir():
        raise RulesError(f"{base}: rules directory does not exist")
    return {code: load_region_rules(base / f"{code}.yaml") for code in regions}
