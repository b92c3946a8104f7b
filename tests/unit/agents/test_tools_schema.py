"""What the model sees of each tool: an OpenAI function with a plain JSON-Schema."""

from __future__ import annotations

import pytest

from shopops.agents.definitions import AGENTS, agent_named
from shopops.agents.tools import TOOLS
from shopops.core.errors import NotFoundError
from shopops.llm.model import ToolDef


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_is_a_valid_openai_function_without_null_unions(name: str) -> None:
    schema = TOOLS[name].openai_schema()
    ToolDef.model_validate(schema)  # what the gateway accepts
    for prop in schema["function"]["parameters"].get("properties", {}).values():
        assert "anyOf" not in prop
        assert prop.get("description")


def test_arguments_are_validated_with_the_problem_named() -> None:
    with pytest.raises(ValueError, match="order_id"):
        TOOLS["order_status"].parse({"order_id": "12"})
    with pytest.raises(ValueError, match="Extra inputs"):
        TOOLS["order_status"].parse({"order_id": "vn-o-000000001", "sql": "drop table"})
    assert TOOLS["reconciliation_exceptions"].parse({"region": "sg"}).region == "sg"


def test_agents_only_have_read_only_tools_and_known_names() -> None:
    for agent in AGENTS.values():
        for name in agent.tools:
            assert TOOLS[name].read_only
    assert agent_named("support").acts_for_customer
    with pytest.raises(NotFoundError, match="agents: support, ops-copilot, triage"):
        agent_named("sales")
