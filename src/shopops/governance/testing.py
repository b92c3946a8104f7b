"""Policy test cases kept beside the policies (``policies/tests/*.toml``), run by ``shopops policy test``.

Each file holds ``[[case]]`` tables::

    [[case]]
    name = "support reads events"
    principal = { kind = "user", name = "sam", roles = ["support"], home_region = "vn" }
    action = "read"
    resource = 'Api::"events"'
    context = { method = "GET", path = "/v1/events/topics" }
    expect = "allow"                                # or "deny"
    reasons = ["support-reads-orders-and-stock"]    # optional: the determining policies
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopops.core.errors import InvalidInputError
from shopops.governance.errors import PolicyLoadError
from shopops.governance.model import Decision, EntityRef, make_principal
from shopops.governance.policy import PolicyEngine


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    expected: str
    decision: Decision
    problem: str = ""


def load_cases(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((directory / "tests").glob("*.toml")):
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise PolicyLoadError(f"{path}: {exc}", hint="fix the TOML syntax of the test file") from exc
        for index, case in enumerate(doc.get("case", []), 1):
            out.append((f"{path.name}#{index}", case))
    return out


def run_cases(engine: PolicyEngine) -> list[CaseResult]:
    """Every test case of the engine's directory, in file order."""
    results = []
    for where, case in load_cases(engine.directory):
        try:
            p = case["principal"]
            principal = make_principal(
                p.get("kind", "user"), p["name"], p.get("roles", []), p.get("home_region", "vn")
            )
            expected = case["expect"]
            if expected not in ("allow", "deny"):
                raise InvalidInputError(f"expect must be allow or deny, not {expected!r}")
            decision = engine.decide(
                principal, case["action"], EntityRef.parse(case["resource"]), case.get("context", {})
            )
        except (KeyError, InvalidInputError) as exc:
            raise PolicyLoadError(
                f"policy test {where} ({case.get('name', '?')}) is malformed: {exc}",
                hint="a case needs principal {name, roles, home_region}, action, resource and expect",
            ) from exc
        name = case.get("name", where)
        problem = ""
        if decision.allowed != (expected == "allow"):
            problem = f"expected {expected}, got {decision.explain()}"
        elif "reasons" in case and sorted(case["reasons"]) != sorted(decision.reasons):
            problem = f"expected reasons {sorted(case['reasons'])}, got {sorted(decision.reasons)}"
        results.append(CaseResult(where, name, not problem, expected, decision, problem))
    return results
