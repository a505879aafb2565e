"""A test double: a Backend that replays scripted replies and records each request.

    backend = ScriptedBackend(['{"tool_name": "Final Answer", "input": "hi"}'])

Each script entry is one reply: a string (streamed in small chunks), a list of ``ToolCall``
(native calls, with optional text before them as a leading string), or a ``MixchatError`` to
raise. ``hang=True`` on an entry-less backend waits until cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from mixchat.backends import Backend, Capability, ChatRequest, TextDelta, ToolCall, Usage
from mixchat.config import Settings
from mixchat.outcome import Outcome

Script = str | Sequence[Any] | Exception


class ScriptedBackend(Backend):
    name = "scripted"
    default_model = "scripted"

    def __init__(
        self,
        replies: Iterable[Script] = (),
        capabilities: Iterable[Capability] = (),
        chunk: int = 7,
        delay: float = 0.0,
    ) -> None:
        super().__init__(Settings(backend="echo"))
        self.replies = list(replies)
        self.capabilities = frozenset(capabilities)  # type: ignore[misc]
        self.requests: list[ChatRequest] = []
        self.chunk = chunk
        self.delay = delay
        self.closed = 0  # replies whose stream has ended or been closed

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage | ToolCall]:
        self.requests.append(request)
        try:
            if not self.replies:
                await asyncio.Event().wait()  # no script left: hang until cancelled
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            for part in [reply] if isinstance(reply, str) else list(reply):
                if isinstance(part, ToolCall):
                    yield part
                    continue
                for start in range(0, len(part), self.chunk):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    yield TextDelta(part[start : start + self.chunk])
            yield Usage(prompt_tokens=1, completion_tokens=1, outcome=Outcome.STOP)
        finally:
            self.closed += 1
