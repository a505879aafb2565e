"""The ``echo`` backend: streams the last user message back word by word.

A diagnostics backend: it checks the UI, the streaming path and the tests without a model.

It paces the words at ``echo_delay`` seconds each, as a model of that speed would, but wakes
the event loop at most every :data:`TICK` seconds and then yields every word that is due. A
sleeping process's wake-up is what costs: 200 sleeps of 10 ms take ~70 ms of CPU on a 2-core
VM, more than the whole web tier spends on the reply, so a wake-up per word would make the
fake model, not the app, the largest cost of an exchange (and of 32 sessions at once).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Hashable

from mixchat.backends.base import Backend, Capability, ChatRequest
from mixchat.backends.events import TextDelta, Usage
from mixchat.config import Settings
from mixchat.messages import Message
from mixchat.outcome import Outcome

#: The shortest time between two wake-ups of a streaming echo (seconds).
TICK = 0.1


class EchoBackend(Backend):
    name = "echo"
    default_model = "echo"
    known_models = ("echo",)
    capabilities = frozenset({Capability.TOKENIZER})

    @property
    def description(self) -> str:
        return "the echo backend (diagnostics: it repeats your message)"

    @classmethod
    def instance_key(cls, settings: Settings) -> Hashable:
        """Its context length is the n_ctx setting, so a different n_ctx is another instance."""
        return (cls.name, settings.model, settings.base_url, settings.n_ctx)

    @property
    def context_length(self) -> int:
        return self.settings.n_ctx

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(m["content"].split()) + 1 for m in messages)

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        text = _last_user(request.messages)
        words = re.findall(r"\s*\S+\s*|\s+", text)
        limit = request.params.max_tokens
        delay = self.settings.echo_delay
        loop = asyncio.get_running_loop()
        start = woke = loop.time()
        for index, word in enumerate(words[:limit]):
            ahead = start + index * delay - loop.time()
            if ahead > 0:  # not due yet: sleep until it is, and at least a tick since waking
                await asyncio.sleep(max(ahead, woke + TICK - loop.time()))
                woke = loop.time()
            yield TextDelta(word)
        yield Usage(
            prompt_tokens=self.count_tokens(request.messages),
            completion_tokens=min(len(words), limit),
            outcome=Outcome.LENGTH if len(words) > limit else Outcome.STOP,
        )


def _last_user(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""
