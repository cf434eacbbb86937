import enum
from typing import Literal

import pytest

from voxlane import Agent, RunContext, ToolError, function_tool
from voxlane.voice.tools import build_tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


async def book(
    ctx: RunContext,
    day: str,
    people: int,
    slot: Literal["morning", "afternoon"] = "morning",
    tags: list[str] | None = None,
    urgent: bool = False,
    color: Color = Color.RED,
) -> str:
    """Book a table.

    Longer text that is not part of the summary.

    Args:
        day: the day of the visit
        people: how many people come
    """
    return "ok"


def test_schema_from_hints_and_docstring() -> None:
    tool = build_tool(book)
    assert tool.spec.name == "book" and tool.spec.description == "Book a table."
    params = tool.spec.parameters
    assert params["required"] == ["day", "people"]
    props = params["properties"]
    assert props["day"] == {"type": "string", "description": "the day of the visit"}
    assert props["people"]["type"] == "integer"
    assert props["slot"] == {"type": "string", "enum": ["morning", "afternoon"]}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["urgent"] == {"type": "boolean"}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert "ctx" not in props and tool.context_param == "ctx"
    assert tool.spec.to_openai()["function"]["name"] == "book"


def test_sync_functions_are_refused() -> None:
    with pytest.raises(TypeError):

        @function_tool
        def nope() -> None:  # type: ignore[misc]
            return None


class Clinic(Agent):
    @function_tool(name="lookup", description="Look a patient up.")
    async def find(self, name: str) -> str:
        return f"found {name}"


async def test_method_tools_are_bound_and_arguments_checked() -> None:
    agent = Clinic()
    tool = agent.tools["lookup"]
    assert tool.spec.description == "Look a patient up."
    ctx = RunContext.__new__(RunContext)
    assert await tool.call(ctx, '{"name": "Ada"}') == "found Ada"
    for bad, message in [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ("{}", "missing required"),
        ('{"name": "x", "age": 3}', "unknown arguments"),
    ]:
        with pytest.raises(ToolError, match=message):
            await tool.call(ctx, bad)
