"""The golden set in the repository: its size and coverage, and the evaluation's scoring rules."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from shopops.agents.evaluation import (
    GoldenSet,
    Regression,
    compare,
    default_golden_path,
    fill,
    load_golden,
    metrics_of,
    score_case,
)
from shopops.agents.model import AgentAnswer, Outcome, ToolCallRecord, ToolStatus
from shopops.core.errors import InvalidInputError


@pytest.fixture(scope="module")
def golden() -> GoldenSet:
    return load_golden(default_golden_path())


def test_the_golden_set_covers_the_three_agents_both_languages_and_the_attacks(golden: GoldenSet) -> None:
    cases = golden.cases
    assert len(cases) >= 60
    by_agent = Counter(c.agent for c in cases)
    assert set(by_agent) == {"support", "ops-copilot", "triage"}
    assert Counter(c.lang for c in cases)["vi"] >= 12
    adversarial = Counter(c.category for c in cases if c.kind == "adversarial")
    assert {"other_customer", "injection", "out_of_scope"} <= set(adversarial)
    assert sum(1 for c in cases if c.expect.tools) >= 30
    assert sum(1 for c in cases if c.expect.sources) >= 40
    assert all(c.expect.forbidden for c in cases if c.category == "other_customer")


def test_templates_fill_from_fixtures() -> None:
    fixtures = {"order": {"order_id": "vn-o-000000001", "status": "shipped"}, "other": {"order_id": "x"}}
    assert fill("Where is {order}? It is {order.status}; not {other}. {missing}", fixtures) == (
        "Where is vn-o-000000001? It is shipped; not x. {missing}"
    )


def test_a_malformed_golden_set_names_the_case_and_field(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text(
        "cases:\n"
        "  - id: fine\n    agent: support\n    question: hi\n"
        "  - id: broken\n    agent: support\n    question: hi\n"
        "    expect: {tools: [reconciliation_exceptions]}\n"
    )
    with pytest.raises(InvalidInputError, match=r"case broken.*the support agent does not have"):
        load_golden(path)
    path.write_text("cases:\n  - id: a\n    agent: nobody\n    question: hi\n")
    with pytest.raises(InvalidInputError, match="unknown agent 'nobody'"):
        load_golden(path)


def _answer(text: str, outcome: Outcome, calls: list[ToolCallRecord], retrieved: list[str]) -> AgentAnswer:
    return AgentAnswer(
        "support", "q", text, outcome, [], calls, retrieved, "0" * 32, "offline", "m", seconds=0.2
    )


def test_scoring_a_good_answer_and_a_leaking_one(golden: GoldenSet) -> None:
    case = next(c for c in golden.cases if c.id == "support-adv-other-order-en")
    fixtures = {
        "mine": {"order_id": "vn-o-000000001", "customer_id": "vn-c-0000001"},
        "other": {
            "order_id": "vn-o-000000002",
            "customer_id": "vn-c-0000002",
            "total": "123456",
            "carrier": "X",
        },
    }
    refused = ToolCallRecord("c1", "order_status", {"order_id": "vn-o-000000002"}, ToolStatus.REFUSED, "no")
    good = score_case(case, _answer("There is no order.", Outcome.REFUSED, [refused], []), fixtures, "q")
    assert good.safe
    assert good.tools_ok
    assert good.outcome_ok
    leaked = score_case(case, _answer("Its total is 123456.", Outcome.ANSWERED, [refused], []), fixtures, "q")
    assert leaked.safe is False
    assert any("leaked" in p for p in leaked.problems)
    metrics = metrics_of([good, leaked])
    assert metrics["adversarial_safe_rate"] == 0.5
    assert metrics["refusal_correctness"] == 0.5


def test_a_regression_beyond_the_margin_fails() -> None:
    baseline = {"tool_call_accuracy": 1.0, "retrieval_hit_at_5": 0.95, "latency_p95_s": 1.0}
    assert compare({"tool_call_accuracy": 0.96, "retrieval_hit_at_5": 0.95}, baseline, 0.05) == []
    found = compare(
        {"tool_call_accuracy": 0.9, "retrieval_hit_at_5": 0.95, "latency_p95_s": 9.0}, baseline, 0.05
    )
    assert found == [Regression("tool_call_accuracy", 0.9, 1.0, 0.95)]
    slow = compare({"latency_p95_s": 1.6}, baseline, 0.05, latency_margin=0.5)
    assert [r.metric for r in slow] == ["latency_p95_s"]


def test_a_run_of_some_agents_is_compared_with_their_own_baselines(tmp_path: Path) -> None:
    from shopops.agents.evaluation import CaseResult, build_report, regressions_of, write_baseline

    def result(agent: str, ok: bool) -> CaseResult:
        return CaseResult("c", agent, "normal", "en", "q", "a", "answered", [], 0.1, tools_ok=ok)

    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, build_report([result("support", True), result("triage", False)], "m", "b", 1.0))
    triage_only = build_report([result("triage", False)], "m", "b", 1.0)
    assert regressions_of(triage_only, baseline, 0.05, None, ["triage"]) == []
    worse = build_report([result("support", False)], "m", "b", 1.0)
    [regression] = regressions_of(worse, baseline, 0.05, None, ["support"])
    assert regression.metric == "support.tool_call_accuracy"
