"""Function tools: ``@function_tool`` turns a typed, documented function into an LLM tool.

The JSON schema comes from the type hints (str, int, float, bool, Literal, Enum, list[...],
Optional/defaults) and the docstring (first paragraph = description; an ``Args:`` section
describes parameters). A parameter annotated ``RunContext`` is injected, never exposed.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Union, get_args, get_origin

from voxlane.chat import ToolCall, ToolSpec
from voxlane.errors import ToolError
from voxlane.voice.api import SessionAPI
from voxlane.voice.speech import SpeechHandle


@dataclass
class RunContext:
    """Given to a tool that asks for it: the session, the speech it runs in, the call."""

    session: SessionAPI[Any]
    speech_handle: SpeechHandle
    function_call: ToolCall

    @property
    def userdata(self) -> Any:
        return self.session.userdata


ToolFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=ToolFn)


@dataclass(frozen=True)
class FunctionTool:
    """A tool: its spec for the LLM and the callable that runs it."""

    spec: ToolSpec
    fn: ToolFn
    context_param: str | None
    params: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, obj: object) -> FunctionTool:
        """The tool bound to an agent instance (for tools defined as methods)."""
        return FunctionTool(self.spec, self.fn.__get__(obj), self.context_param, self.params)

    async def call(self, ctx: RunContext, arguments: str) -> Any:
        """Parse ``arguments`` (a JSON object) and run the tool.

        Raises ``ToolError`` for arguments that do not match the schema.
        """
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(f"arguments are not valid JSON: {exc}") from exc
        if not isinstance(args, dict):
            raise ToolError("arguments must be a JSON object")
        unknown = set(args) - set(self.params)
        if unknown:
            raise ToolError(f"unknown arguments: {sorted(unknown)}")
        missing = [p for p in self.spec.parameters.get("required", []) if p not in args]
        if missing:
            raise ToolError(f"missing required arguments: {missing}")
        if self.context_param:
            args[self.context_param] = ctx
        return await self.fn(**args)


_TOOL_ATTR = "__voxlane_tool__"


def function_tool(
    fn: F | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Decorate an ``async def`` (function or agent method) to make it a tool."""

    def wrap(f: F) -> F:
        is_async = inspect.iscoroutinefunction(f)
        if not is_async:
            raise TypeError(f"function tool {f.__name__} must be 'async def'")
        setattr(f, _TOOL_ATTR, build_tool(f, name=name, description=description))
        return f

    return wrap(fn) if fn is not None else wrap


def get_tool(obj: object) -> FunctionTool | None:
    tool = getattr(obj, _TOOL_ATTR, None)
    return tool if isinstance(tool, FunctionTool) else None


def build_tool(
    fn: ToolFn, *, name: str | None = None, description: str | None = None
) -> FunctionTool:
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_docstring(doc)
    hints = typing.get_type_hints(fn)
    sig = inspect.signature(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    context_param: str | None = None
    params: list[str] = []
    for pname, param in sig.parameters.items():
        if pname in ("self", "cls"):
            continue
        hint = hints.get(pname, str)
        if hint is RunContext:
            context_param = pname
            continue
        schema, optional = _schema_for(hint)
        if pname in arg_docs:
            schema["description"] = arg_docs[pname]
        properties[pname] = schema
        params.append(pname)
        if param.default is inspect.Parameter.empty and not optional:
            required.append(pname)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    spec = ToolSpec(name or fn.__name__, description or summary, parameters)
    return FunctionTool(spec, fn, context_param, tuple(params))


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    parts = re.split(r"\n\s*(?:Args|Arguments|Parameters):\s*\n", doc, maxsplit=1)
    summary = parts[0].strip().split("\n\n")[0].replace("\n", " ")
    args: dict[str, str] = {}
    if len(parts) > 1:
        for m in re.finditer(r"^\s*(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", parts[1], re.M):
            args[m.group(1)] = m.group(2).strip()
    return summary, args


_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_for(hint: Any) -> tuple[dict[str, Any], bool]:
    """JSON schema for a type hint, and whether the hint admits None."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        schema, _ = _schema_for(args[0]) if len(args) == 1 else ({}, False)
        return schema, True
    if hint in _PRIMITIVES:
        return {"type": _PRIMITIVES[hint]}, False
    if origin is typing.Literal:
        values = list(get_args(hint))
        return {"type": _PRIMITIVES.get(type(values[0]), "string"), "enum": values}, False
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}, False
    if origin in (list, tuple, set, frozenset):
        item_types = get_args(hint)
        item, _ = _schema_for(item_types[0]) if item_types else ({}, False)
        return {"type": "array", "items": item}, False
    if origin is dict or hint is dict:
        return {"type": "object"}, False
    return {"type": "string"}, False
