"""Reading a model's tool call (slide "Tool use": describe → reason → act → observe → answer).

The model asks for a tool by writing ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (SmolLM2's
function-calling format; a one-element JSON list is accepted too). ``parse_call`` reads it with ``json.loads``
and checks its shape: the result is data (a name and a dict of arguments) or a ``ParseFailure`` saying why not.
Nothing the model writes is ever evaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_CALL_CHARS = 2000
_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict


@dataclass(frozen=True)
class ParseFailure:
    raw: str
    reason: str


def split_call(text: str) -> tuple[str, str | None]:
    """(the text before the first <tool_call>, the call's inside or None when the text asks for no tool)."""
    text = text or ""
    m = _CALL.search(text)
    if m is None:
        return text.strip(), None
    return text[: m.start()].strip(), m.group(1).strip()


def parse_call(raw: str, known: set[str] | frozenset[str] = frozenset()) -> ToolCall | ParseFailure:
    """A tool call read as JSON data, or why it cannot be one. ``known``: the tool names on offer (empty: any)."""
    if len(raw) > MAX_CALL_CHARS:
        return ParseFailure(raw[:200], f"the call is {len(raw)} characters; the limit is {MAX_CALL_CHARS}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        return ParseFailure(raw, f"not JSON ({err.msg} at character {err.pos})")
    if isinstance(data, list):
        if len(data) != 1:
            return ParseFailure(raw, f"expected one call, got a list of {len(data)}")
        data = data[0]
    if not isinstance(data, dict):
        return ParseFailure(raw, f"expected an object with name and arguments, got {type(data).__name__}")
    name, arguments = data.get("name"), data.get("arguments", {})
    if not isinstance(name, str) or not name:
        return ParseFailure(raw, "the call has no tool name")
    if known and name not in known:
        return ParseFailure(raw, f"there is no tool {name!r} (tools: {', '.join(sorted(known))})")
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return ParseFailure(raw, "the arguments are a string that is not JSON")
    if not isinstance(arguments, dict):
        return ParseFailure(raw, f"arguments must be an object, got {type(arguments).__name__}")
    return ToolCall(name, arguments)
