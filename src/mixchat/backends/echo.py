"""The ``echo`` backend: streams the last user message back word by word.

A diagnostics backend: it checks the UI, the streaming path and the tests without a model.
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
        for index, word in enumerate(words[:limit]):
            if index and self.settings.echo_delay:
                await asyncio.sleep(self.settings.echo_delay)
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
