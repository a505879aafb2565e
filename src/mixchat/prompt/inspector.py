"""The prompt inspector: exactly what the model received for a reply, kept with the reply.

:func:`fit_context` drops the oldest exchanges that no longer fit the model's context, and
says which; :func:`record_prompt` writes down what was sent: the messages, the prompt text
and token ids where the model runs here, the sampling, and for Mixtral's v1 vocabulary
whether the ids equal what mistral-common's own ``InstructTokenizerV1`` gives. The record
goes into the store with the reply (``prompt``) and into the JSON export, so a reply can be
reproduced; ``mixchat prompt`` prints it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mixchat.messages import Message
from mixchat.outcome import plural

if TYPE_CHECKING:
    from mixchat.backends.base import Backend, ChatRequest


@dataclass(frozen=True)
class PromptRecord:
    """What one reply's model call received. ``text`` and ``token_ids`` are None where a
    server formats the messages itself (the messages are then exactly what it was sent)."""

    backend: str
    model: str | None
    messages: list[Message]
    sampling: dict[str, Any]
    dropped: list[Message] = field(default_factory=list)
    prompt_format: str | None = None
    text: str | None = None
    token_ids: list[int] | None = None
    token_count: int | None = None
    #: For Mixtral's vocabulary: the ids equal mistral-common's (None: not applicable).
    equals_mistral_common: bool | None = None
    #: For an agent's reply: how many model calls it made (this record is the last one's).
    agent_calls: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain copy, for the store's JSON. Not ``dataclasses.asdict``: its deep copy of
        every value costs ~1 ms for a full context's messages and ids, on each reply."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["messages"] = [dict(message) for message in self.messages]
        data["dropped"] = [dict(message) for message in self.dropped]
        data["sampling"] = dict(self.sampling)
        if self.token_ids is not None:
            data["token_ids"] = list(self.token_ids)
        return data

    @property
    def destination(self) -> str:
        """Where the prompt went, as the inspector's first line says it (both faces)."""
        where = f"{self.backend}, {self.model}"
        if self.prompt_format:
            where += f", {self.prompt_format} format"
        if self.agent_calls:  # the agent calls the model once per step: this is the last call
            where += f"; the last of the agent's {plural(self.agent_calls, 'model call')}"
        return where

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def fit_context(
    messages: Sequence[Message],
    count_tokens: Callable[[list[Message]], int],
    context_length: int | None,
    max_tokens: int,
) -> tuple[list[Message], list[Message]]:
    """Drop the oldest user/assistant pairs until prompt + reply fit the context.

    Returns the messages to send and those dropped, oldest first. The system prompt and the
    last user message are always kept (if even they overflow, the backend says so).

    Dropping more never makes the prompt longer, so the number of pairs to drop is found by
    bisection: a few counts of the conversation, not one per pair (counting tokenizes the
    whole prompt; one per pair made each turn of a long conversation cost more).
    """
    messages = list(messages)
    if context_length is None:
        return messages, []
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(system) :]

    def fits(pairs: int) -> bool:
        return count_tokens(system + body[2 * pairs :]) + max_tokens <= context_length

    low, high = 0, len(body) // 2  # dropping ``high`` pairs keeps at least the last message
    if fits(low):
        high = low
    while high - low > 1:  # fits(high) or high is the most that may go; not fits(low)
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return system + body[2 * high :], body[: 2 * high]


def record_prompt(
    backend: Backend,
    request: ChatRequest,
    dropped: Sequence[Message] = (),
    agent_calls: int | None = None,
) -> PromptRecord:
    """What ``backend`` receives for ``request`` (load the backend first for exact ids).

    For an agent's reply, ``request`` is its last model call (the one that answered) and
    ``agent_calls`` says how many it made: the earlier ones are in its steps.
    """
    messages = list(request.messages)
    ids = backend.prompt_ids(messages, request.assistant_prefix)
    return PromptRecord(
        backend=backend.name,
        model=backend.model_name,
        messages=messages,
        sampling=request.params.model_dump(mode="json"),
        dropped=list(dropped),
        prompt_format=backend.prompt_format,
        text=backend.prompt_text(messages, request.assistant_prefix),
        token_ids=ids,
        token_count=len(ids) if ids is not None else backend.count_tokens(messages),
        equals_mistral_common=(
            ids == mistral_common_ids(messages)
            if ids is not None
            and backend.prompt_format == "mixtral"
            and not request.assistant_prefix
            else None
        ),
        agent_calls=agent_calls,
    )


def mistral_common_ids(messages: Sequence[Message]) -> list[int] | None:
    """The ids mistral-common's ``InstructTokenizerV1`` (Mixtral-8x7B-Instruct) gives, or
    None for a conversation it does not take (it wants user and assistant alternating)."""
    from mistral_common.exceptions import MistralCommonException
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    kinds: dict[str, Any] = {
        "system": SystemMessage,
        "user": UserMessage,
        "assistant": AssistantMessage,
    }
    try:
        request: Any = ChatCompletionRequest(
            messages=[kinds[m["role"]](content=m["content"]) for m in messages]
        )
        return list(_mistral_v1().encode_chat_completion(request).tokens)
    except (KeyError, ValueError, MistralCommonException):
        return None


@functools.cache
def _mistral_v1() -> Any:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from mixchat.prompt.mixtral import mistral_v1_tokenizer_path

    return MistralTokenizer.from_file(mistral_v1_tokenizer_path())


__all__ = ["PromptRecord", "fit_context", "mistral_common_ids", "record_prompt"]
