"""LLM contract: chat context + tool specs in, text deltas and tool calls out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from voxlane.chat import ChatContext, ToolCall, ToolSpec
from voxlane.providers.base import ProviderStream


@dataclass(frozen=True)
class ChatChunk:
    """A piece of the reply: some text, and/or complete tool calls."""

    delta: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class LLMStream(ProviderStream):
    kind: ClassVar[str] = "llm"

    def __aiter__(self) -> LLMStream:
        return self

    @abstractmethod
    async def __anext__(self) -> ChatChunk: ...


class LLM(ABC):
    label: str = "llm"

    @abstractmethod
    def chat(self, ctx: ChatContext, tools: Sequence[ToolSpec] = ()) -> LLMStream: ...
