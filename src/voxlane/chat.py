"""Conversation data shared by the LLM providers and the voice layer."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
_ids = itertools.count(1)


@dataclass(frozen=True)
class ToolCall:
    """An LLM's request to run a function tool. ``arguments`` is a JSON object string."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolSpec:
    """What the LLM is told about a tool: name, description, JSON schema of the arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass
class ChatMessage:
    """One item of the conversation.

    ``at_s`` is seconds since the session started; ``interrupted`` marks an assistant reply
    cut off by barge-in or close (``text`` is then what had been generated when it stopped).
    """

    role: Role
    text: str
    at_s: float = 0.0
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    id: str = field(default_factory=lambda: f"item_{next(_ids)}")

    def to_report(self) -> dict[str, Any]:
        """The DESIGN §8 history entry."""
        text = self.text
        if not text and self.tool_calls:
            text = "; ".join(f"{c.name}({c.arguments})" for c in self.tool_calls)
        role = self.role if self.role != "system" else "assistant"
        return {
            "role": role,
            "text": text,
            "interrupted": self.interrupted,
            "at_s": round(self.at_s, 3),
        }


@dataclass
class ChatContext:
    """An ordered list of messages; the LLM sees a copy with the agent's instructions first."""

    messages: list[ChatMessage] = field(default_factory=list)

    def add(self, message: ChatMessage) -> ChatMessage:
        self.messages.append(message)
        return message

    def copy(self) -> ChatContext:
        return ChatContext(list(self.messages))

    def with_instructions(self, instructions: str) -> ChatContext:
        head = [ChatMessage("system", instructions)] if instructions else []
        return ChatContext(head + [m for m in self.messages if m.role != "system"])

    def __len__(self) -> int:
        return len(self.messages)
