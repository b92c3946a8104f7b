"""The Cedar engine on the shipped policies, their test cases, and malformed policy sets."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shopops.governance.errors import PolicyLoadError
from shopops.governance.model import EntityRef, make_principal
from shopops.governance.policy import (
    PolicyEngine,
    PolicySource,
    context_actions,
    default_policy_dir,
    load_policies,
    split_statements,
)
from shopops.governance.testing import run_cases

SUPPORT = make_principal("user", "sam", ["support"], "vn")
READ_EVENTS = ("read", EntityRef("Api", "events"), {"method": "GET", "path": "/v1/events/topics"})


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), target)
    return target


def test_every_shipped_policy_test_case_passes() -> None:
    results = run_cases(PolicyEngine(default_policy_dir()))
    assert len(results) >= 20
    assert [r.name for r in results if not r.passed] == []


def test_decisions_carry_the_deciding_policy_ids() -> None:
    engine = PolicyEngine(default_policy_dir())
    allowed = engine.decide(SUPPORT, *READ_EVENTS)
    assert allowed.allowed
    assert allowed.reasons == ("support-reads-orders-and-stock",)
    denied = engine.decide(SUPPORT, "write", EntityRef("Api", "events"), {"method": "POST", "path": "/x"})
    assert not denied.allowed
    assert denied.default_deny
    assert "default deny" in denied.explain()


def test_statements_are_split_with_their_first_line() -> None:
    text = (
        '// c;\n@id("a")\npermit (principal, action, resource);\n\n// "x;"\n'
        'forbid (principal, action, resource)\nwhen { context.s == "a;b" };\n'
    )
    assert [line for line, _ in split_statements(text)] == [2, 6]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            '@id("ok")\npermit (principal, action, resource);\n'
            '\npermit (principal,\n  action == Action::"read" resource);\n',
            5,
            "resource",
        ),
        (
            '@id("typo")\npermit (principal, action == Action::"read", resource)\n'
            'when { principal.nmae == "x" };\n',
            1,
            "nmae",
        ),
        (
            '@id("a")\npermit (principal, action, resource);\n'
            '@id("a")\nforbid (principal, action, resource);\n',
            3,
            "already used",
        ),
        ('@id("open")\npermit (principal, action, resource)\n', 1, "does not end with ';'"),
    ],
    ids=["syntax", "schema-type", "duplicate-id", "unterminated"],
)
def test_a_malformed_policy_is_refused_with_file_and_line(
    policy_dir: Path, text: str, line: int, fragment: str
) -> None:
    (policy_dir / "zz-broken.cedar").write_text(text)
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(policy_dir)
    assert f"zz-broken.cedar:{line}:" in caught.value.message
    assert fragment in caught.value.message


def test_a_malformed_reload_keeps_the_previous_set_in_force(policy_dir: Path) -> None:
    engine = PolicyEngine(policy_dir, reload_interval_s=0)
    version = engine.policies.version
    (policy_dir / "api.cedar").write_text((policy_dir / "api.cedar").read_text() + "\npermit (principal,")
    with pytest.raises(PolicyLoadError, match=r"api\.cedar:\d+"):
        engine.reload()
    assert engine.policies.version == version
    assert engine.decide(SUPPORT, *READ_EVENTS).allowed
    # The file watch refuses it too, once, and keeps deciding with the previous set.
    reloaded = engine.maybe_reload()
    assert reloaded is None or reloaded[1] is not None
    assert engine.decide(SUPPORT, *READ_EVENTS).allowed
    assert engine.last_error is not None


def test_changed_policies_apply_without_restart(policy_dir: Path) -> None:
    engine = PolicyEngine(policy_dir, reload_interval_s=0)
    write = ("write", EntityRef("Api", "inventory"), {"method": "PUT", "path": "/v1/inventory/stock"})
    assert not engine.decide(SUPPORT, *write).allowed
    time.sleep(0.01)  # a distinct modification time
    (policy_dir / "extra.cedar").write_text(
        '@id("support-fixes-stock")\npermit (principal in Role::"support", action == Action::"write", '
        'resource == Api::"inventory");\n'
    )
    changed = engine.maybe_reload()
    assert changed is not None
    assert changed[1] is None
    decision = engine.decide(SUPPORT, *write)
    assert decision.allowed
    assert decision.reasons == ("support-fixes-stock",)


# --- cached decisions -----------------------------------------------------------------------------


def _decisions(source: str) -> float:
    value = REGISTRY.get_sample_value("shopops_policy_decisions_total", {"source": source})
    return value or 0.0


def test_only_actions_whose_policies_read_context_are_left_uncached() -> None:
    loaded = load_policies(default_policy_dir())
    # The shipped policies read context for these; route decisions (read, write) depend on nothing
    # but the principal, the action and the API area.
    assert loaded.context_actions == frozenset({"read_pii", "promote", "call_tool", "send_pii"})


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('permit (principal, action == Action::"read", resource) when { context.path == "/x" };', {"read"}),
        (
            'forbid (principal, action in [Action::"read", Action::"write"], resource)\n'
            'unless { context.method == "GET" };',
            {"read", "write"},
        ),
        ('permit (principal, action, resource) when { context.method == "GET" };', None),
        # Reading a word "context" in a string is not reading the context.
        ('permit (principal, action == Action::"read", resource == Api::"context");', set()),
        (
            'permit (principal, action == Action::"read", resource) when { resource == Api::"context" };',
            set(),
        ),
        (
            'permit (principal, action == Action::"write", resource)\n'
            'when { resource == Api::"a//b" && context.method == "PUT" };',
            {"write"},
        ),
        ('permit (principal, action == Action::"read", resource) // when { context.x }\n;', set()),
        (
            '@id("permit (principal, action, resource) when { context }")\n'
            'permit (principal, action == Action::"promote", resource) when { context.alias == "x" };',
            {"promote"},
        ),
    ],
    ids=[
        "one-action",
        "action-list",
        "any-action",
        "string-in-scope",
        "string-in-condition",
        "slashes-in-a-string",
        "commented-out",
        "annotation",
    ],
)
def test_context_reading_policies_are_found(policy: str, expected: set[str] | None) -> None:
    sources = (PolicySource("p", "x.cedar", 1, policy),)
    found = context_actions(sources)
    assert found == (None if expected is None else frozenset(expected))


def test_a_route_decision_comes_from_the_cache_the_second_time() -> None:
    engine = PolicyEngine(default_policy_dir())
    first = engine.decide(SUPPORT, *READ_EVENTS)
    cached, evaluated = _decisions("cache"), _decisions("engine")
    other_path = {"method": "GET", "path": "/v1/events/x"}
    again = engine.decide(SUPPORT, "read", EntityRef("Api", "events"), other_path)
    assert again == first
    assert (_decisions("cache"), _decisions("engine")) == (cached + 1, evaluated)
    # Another principal with the same name but other roles is another entity: evaluated anew.
    other = make_principal("user", "sam", ["finance"], "vn")
    assert engine.decide(other, *READ_EVENTS).reasons == ("finance-reads-events-and-reconciliation",)
    assert _decisions("engine") == evaluated + 1


def test_decisions_that_depend_on_context_are_evaluated_every_time() -> None:
    engine = PolicyEngine(default_policy_dir())
    finance = make_principal("user", "fay", ["finance"], "vn")
    resource = EntityRef("Dataset", "shop.customers")
    here = {"column": "email", "tag": "pii", "dataset_region": "vn"}
    elsewhere = {**here, "dataset_region": "sg"}
    evaluated = _decisions("engine")
    assert engine.decide(finance, "read_pii", resource, here).allowed
    assert not engine.decide(finance, "read_pii", resource, elsewhere).allowed
    assert engine.decide(finance, "read_pii", resource, here).allowed
    assert _decisions("engine") == evaluated + 3


def test_a_policy_change_is_never_answered_from_the_cache(policy_dir: Path) -> None:
    engine = PolicyEngine(policy_dir, reload_interval_s=0)
    write = ("write", EntityRef("Api", "inventory"), {"method": "PUT", "path": "/v1/inventory/stock"})
    assert not engine.decide(SUPPORT, *write).allowed
    assert not engine.decide(SUPPORT, *write).allowed  # cached
    time.sleep(0.01)  # a distinct modification time
    (policy_dir / "extra.cedar").write_text(
        '@id("support-fixes-stock-on-put")\npermit (principal in Role::"support", action == Action::"write", '
        'resource == Api::"inventory") when { context.method == "PUT" };\n'
    )
    assert engine.maybe_reload() is not None
    assert engine.policies.context_actions is not None
    assert "write" in engine.policies.context_actions  # now it depends on the request
    assert engine.decide(SUPPORT, *write).allowed
    post = ("write", EntityRef("Api", "inventory"), {"method": "POST", "path": "/v1/inventory/stock"})
    assert not engine.decide(SUPPORT, *post).allowed
