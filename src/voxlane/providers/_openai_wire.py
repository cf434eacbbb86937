"""OpenAI Chat Completions wire format: pure and synchronous (no I/O, no clock).

* :func:`request_body` — a :class:`ChatContext` and tool specs → the JSON request body.
* :class:`SSEDecoder` — bytes as they arrive → the ``data`` payloads of complete SSE events.
* :class:`ReplyAssembler` — each decoded payload → :class:`ChatChunk` s to emit; it accumulates
  ``delta.tool_calls`` fragments by index and releases complete :class:`ToolCall` s at
  ``finish_reason`` or at ``[DONE]``.

Malformed input raises :class:`WireError`; the async adapter turns it into
:class:`~voxlane.errors.ProviderProtocolError`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxlane.chat import ChatContext, ChatMessage, ToolCall, ToolSpec
from voxlane.providers.llm import ChatChunk

DONE = "[DONE]"
_MAX_LINE = 1 << 20
"""One SSE line larger than this is not a chat completion chunk: refuse it (bounded buffer)."""
_SSE_FIELDS = frozenset({"data", "event", "id", "retry"})
_generated_ids = itertools.count(1)


class WireError(ValueError):
    """The peer sent something that is not a Chat Completions SSE stream."""


class StreamError(Exception):
    """The server reported an error inside the stream (``{"error": {...}}``)."""

    def __init__(self, message: str, *, code: int | None, server_side: bool) -> None:
        super().__init__(message)
        self.code = code
        self.server_side = server_side


# -- request ------------------------------------------------------------------------------
def message_to_openai(message: ChatMessage) -> dict[str, Any]:
    """One :class:`ChatMessage` as an OpenAI chat message."""
    if message.role == "tool":
        out: dict[str, Any] = {"role": "tool", "content": message.text}
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        if message.name is not None:
            out["name"] = message.name
        return out
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            # OpenAI accepts null content next to tool calls; some servers insist on a string.
            "content": message.text or None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in message.tool_calls
            ],
        }
    out = {"role": message.role, "content": message.text}
    if message.name is not None and message.role == "user":
        out["name"] = message.name
    return out


def request_body(
    ctx: ChatContext,
    tools: Sequence[ToolSpec],
    *,
    model: str,
    temperature: float | None,
    max_tokens: int | None,
    tool_choice: str | Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming ``POST /chat/completions``.

    ``extra_body`` is merged last, so it may add server-specific fields (``seed``,
    ``top_k``, ...) or override any field above.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_openai(m) for m in ctx.messages],
        "stream": True,
    }
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if tools:
        body["tools"] = [spec.to_openai() for spec in tools]
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    if extra_body:
        body.update(extra_body)
    return body


def forced_tool_choice(name: str) -> dict[str, Any]:
    """``tool_choice`` that makes the model call the function ``name``."""
    return {"type": "function", "function": {"name": name}}


# -- server-sent events -------------------------------------------------------------------
class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes)`` returns the data of each complete event.

    Lines end with LF, CRLF or CR; an empty line ends an event; ``:`` starts a comment
    (keep-alive); ``event``/``id``/``retry`` fields are accepted and ignored. A non-empty
    line that is not ``field: value`` with a known field is not SSE: :class:`WireError`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        events: list[str] = []
        self._buffer += data
        while (cut := _line_end(self._buffer)) is not None:
            end, sep = cut
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + sep]
            event = self._line(raw)
            if event is not None:
                events.append(event)
        if len(self._buffer) > _MAX_LINE:
            raise WireError(f"SSE line longer than {_MAX_LINE} bytes")
        return events

    def _line(self, raw: bytes) -> str | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError("SSE line is not UTF-8") from exc
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if not colon or name not in _SSE_FIELDS:
            raise WireError(f"not an SSE line: {line[:80]!r}")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        """At end of body: an event not yet terminated by an empty line, if any."""
        if self._buffer:
            tail = bytes(self._buffer).rstrip(b"\r")
            self._buffer.clear()
            event = self._line(tail)
            if event is not None:
                return event
        if self._data:
            data, self._data = "\n".join(self._data), []
            return data
        return None


def _line_end(buffer: bytearray) -> tuple[int, int] | None:
    """(index of the line end, separator length) of the first complete line, if any."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 == len(buffer):
        return None  # a CR at the end may be the first half of a CRLF: wait for more
    if buffer[cr + 1] == ord("\n"):
        return cr, 2
    return cr, 1


# -- completion chunks --------------------------------------------------------------------
@dataclass
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def complete(self) -> ToolCall:
        call_id = self.call_id or f"call_voxlane_{next(_generated_ids)}"
        return ToolCall(call_id, self.name, "".join(self.arguments) or "{}")


class ReplyAssembler:
    """Turns decoded ``data`` payloads into chunks; owns the tool-call accumulation."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.done = False

    def feed(self, data: str) -> list[ChatChunk]:
        """One SSE ``data`` payload → chunks to emit (possibly none).

        Raises :class:`WireError` (not JSON, wrong shape) or :class:`StreamError`.
        """
        if data.strip() == DONE:
            self.done = True
            return self._release()
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise WireError(f"chunk is not JSON: {data[:80]!r}") from exc
        if not isinstance(payload, dict):
            raise WireError(f"chunk is not a JSON object: {data[:80]!r}")
        if "error" in payload:
            raise _stream_error(payload["error"])
        choices = payload.get("choices")
        if choices is None:
            return []  # e.g. a usage-only chunk
        if not isinstance(choices, list):
            raise WireError("'choices' is not a list")
        out: list[ChatChunk] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice (n=1)
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise WireError("'delta' is not an object")
            text = delta.get("content")
            if text:
                if not isinstance(text, str):
                    raise WireError("'delta.content' is not a string")
                out.append(ChatChunk(delta=text))
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                self._add_fragment(position, fragment)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
                out.extend(self._release())
        return out

    def finish(self) -> list[ChatChunk]:
        """End of stream: whatever tool calls are still pending."""
        return self._release()

    def _add_fragment(self, position: int, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            raise WireError("'delta.tool_calls' item is not an object")
        index = fragment.get("index", position)
        if not isinstance(index, int):
            raise WireError("'tool_calls[].index' is not an integer")
        call = self._calls.setdefault(index, _PartialCall())
        if fragment.get("id"):
            call.call_id = str(fragment["id"])
        function = fragment.get("function") or {}
        if not isinstance(function, dict):
            raise WireError("'tool_calls[].function' is not an object")
        name = function.get("name")
        if name:
            # OpenAI sends the name once; servers that repeat it whole must not double it.
            call.name = name if not call.name or call.name == name else call.name + name
        arguments = function.get("arguments")
        if arguments:
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)  # some servers send an object
            call.arguments.append(arguments)

    def _release(self) -> list[ChatChunk]:
        if not self._calls:
            return []
        calls = tuple(self._calls[i].complete() for i in sorted(self._calls))
        self._calls.clear()
        return [ChatChunk(tool_calls=calls)]


def _stream_error(error: Any) -> StreamError:
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = error.get("code")
        kind = str(error.get("type") or "")
    else:
        message, code, kind = str(error), None, ""
    numeric = code if isinstance(code, int) else None
    server_side = kind in {"server_error", "overloaded_error"} or (numeric or 0) >= 500
    return StreamError(f"server error in stream: {message}", code=numeric, server_side=server_side)
