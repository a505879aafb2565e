"""Turning OpenAI-shaped stream chunks (both SDKs use that shape) into mixchat events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mixchat.backends.base import ToolCall
from mixchat.backends.events import TextDelta, Usage
from mixchat.errors import ServerError, StreamCut
from mixchat.outcome import Outcome

_FINISH: dict[str, Outcome] = {"length": Outcome.LENGTH, "model_length": Outcome.LENGTH}


@dataclass
class _PendingCall:
    index: int | None
    id: str | None
    name: str
    arguments: list[str] = field(default_factory=list)


class ReplyAssembler:
    """Turns OpenAI-shaped stream chunks (both SDKs use that shape) into mixchat events.

    Text is yielded as it comes; tool calls are collected from their fragments and yielded at
    the end with the usage. A stream that ends without a finish reason was cut.
    """

    def __init__(self, server: str, prefix: str = "") -> None:
        self.server = server
        self.finish_reason: str | None = None
        self.usage: Any = None
        self._calls: list[_PendingCall] = []
        self._prefix = prefix
        self._echo_check = bool(prefix)  # until we know whether the server repeats the prefix
        self._held = ""

    def feed(self, chunk: Any) -> Iterator[TextDelta]:
        if getattr(chunk, "usage", None):
            self.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = choice.delta
            text = _text_of(getattr(delta, "content", None))
            if text:
                text = self._without_echoed_prefix(text)
                if text:
                    yield TextDelta(text)
            for call in getattr(delta, "tool_calls", None) or ():
                self._add_call(call)
            if isinstance(choice.finish_reason, str):
                self.finish_reason = choice.finish_reason

    def finish(self) -> Iterator[ToolCall | Usage | TextDelta]:
        if self._held:
            yield TextDelta(self._held)
            self._held = ""
        if self.finish_reason is None:
            raise StreamCut(
                f"{self.server} ended the reply stream before the reply was "
                "complete; the partial reply is kept"
            )
        if self.finish_reason == "error":
            raise ServerError(f"{self.server} stopped the reply with an error")
        for call in self._calls:
            yield ToolCall(call.name, "".join(call.arguments) or "{}")
        usage = self.usage
        yield Usage(
            prompt_tokens=_int(getattr(usage, "prompt_tokens", None)),
            completion_tokens=_int(getattr(usage, "completion_tokens", None)),
            outcome=_FINISH.get(self.finish_reason, Outcome.STOP),
        )

    def _without_echoed_prefix(self, text: str) -> str:
        """Servers differ on whether a continued reply repeats the prefix: drop it if so."""
        if not self._echo_check:
            return text
        held = self._held + text
        if self._prefix.startswith(held):
            self._held = held  # still undecided
            return ""
        self._echo_check, self._held = False, ""
        return held.removeprefix(self._prefix)

    def _add_call(self, call: Any) -> None:
        function = call.function
        name = getattr(function, "name", None) or ""
        call_id = getattr(call, "id", None)
        index = getattr(call, "index", None)
        last = self._calls[-1] if self._calls else None
        starts = name and (
            last is None or index != last.index or (call_id and last.id and call_id != last.id)
        )
        if starts or last is None:
            last = _PendingCall(index, call_id, name)
            self._calls.append(last)
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str):
            last.arguments.append(arguments)
        elif arguments:  # Mistral may send the arguments as an object
            last.arguments.append(json.dumps(arguments))


def _text_of(content: Any) -> str:
    """Text of a delta's content: a string, or (Mistral) a list of chunks of which the text
    ones count (reasoning chunks of thinking models do not)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _text_of(getattr(part, "text", None))
            for part in content
            if getattr(part, "type", "text") == "text"
        )
    return ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None
