"""Reading a tool call out of what models actually write: code fences, prose around the
object, single quotes, raw newlines in strings, a reply cut short, or the continuation of the
walkthrough's primed ``"tool_name": ``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mixchat.tools.base import FINAL_ANSWER, ToolInput, normalize_name


@dataclass(frozen=True)
class Action:
    """One parsed tool call; ``tool_name`` is the canonical name of a known tool.

    ``input`` is a string, or the object a tool with ``parameters`` takes (checked against
    them by :func:`mixchat.agent.calls.checked_input`); a Final Answer's is always a string.
    """

    tool_name: str
    input: ToolInput

    @property
    def is_final(self) -> bool:
        return self.tool_name == FINAL_ANSWER


class ProtocolError(ValueError):
    """The reply is not a valid tool call; the message tells the model what to fix."""


_NAME_KEYS = ("tool_name", "tool", "name", "action")
_INPUT_KEYS = ("input", "tool_input", "action_input", "arguments", "query", "args")


def parse_action(text: str, tool_names: Sequence[str], primer: str = "") -> Action:
    """The tool call in a reply (``primer`` is the text the reply continues)."""
    errors: list[ProtocolError] = []
    for candidate in dict.fromkeys([primer + text, text] if primer else [text]):
        try:
            return _action(extract_object(candidate), tool_names)
        except ProtocolError as error:
            errors.append(error)
    raise errors[0]


def _action(data: dict[str, Any], tool_names: Sequence[str]) -> Action:
    name = _first(data, _NAME_KEYS)
    if not isinstance(name, str) or not name.strip():
        raise ProtocolError('the JSON object has no "tool_name".')
    value = _first(data, _INPUT_KEYS)
    if value is None:
        raise ProtocolError('the JSON object has no "input".')
    known = {normalize_name(n): n for n in [*tool_names, FINAL_ANSWER]}
    canonical = known.get(normalize_name(name))
    if canonical is None:
        choices = ", ".join(f'"{n}"' for n in [*tool_names, FINAL_ANSWER])
        raise ProtocolError(f'there is no tool named "{name.strip()}"; the tools are {choices}.')
    if isinstance(value, str) or (isinstance(value, dict) and canonical != FINAL_ANSWER):
        return Action(canonical, value)
    return Action(canonical, json.dumps(value))


def _first(data: dict[str, Any], keys: Sequence[str]) -> Any:
    lowered = {str(key).lower(): value for key, value in data.items()}
    return next((lowered[key] for key in keys if key in lowered), None)


def extract_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``, read leniently; :class:`ProtocolError` if none."""
    start = text.find("{")
    if start < 0:
        raise ProtocolError("the reply contains no JSON object.")
    span = object_span(text, start)
    body = text[start:span] if span else text[start:].rstrip().rstrip("`").rstrip()
    candidates = [body] if span else [body + '"}', body + "}", body]
    for candidate in candidates:
        data = _loads(candidate)
        if isinstance(data, dict):
            return data
    raise ProtocolError("the reply is not valid JSON.")


def object_span(text: str, start: int) -> int | None:
    """The index just past the ``{...}`` that opens at ``start``, or None if it never closes."""
    depth = 0
    quote: str | None = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate, strict=False)  # strict=False: raw newlines in strings
    except ValueError:
        pass
    try:
        return ast.literal_eval(candidate)  # single quotes; parses literals only, never runs code
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def recorded_reply(text: str) -> str:
    """The reply as kept in the conversation: up to the end of its first JSON object (and the
    closing fence), so text a model invents after its call (a fake "Tool Output") is dropped."""
    start = text.find("{")
    end = object_span(text, start) if start >= 0 else None
    if end is None:
        return text.strip()
    rest = text[end:]
    fence = re.match(r"\s*```", rest)
    return (text[: end + fence.end()] if fence else text[:end]).strip()
