"""The conversation a session holds, and the part of it that fits the model's context.

Pure logic, no Panel: the chat callback builds every request from here, so the whole
conversation goes to the model each turn (not only the last message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mixchat.agent.steps import Step
from mixchat.messages import Message, Role
from mixchat.outcome import Stats, Status


@dataclass
class Turn:
    """One message of the conversation, as shown and as stored."""

    role: Role  # "user" | "assistant"
    content: str
    status: Status = "complete"
    stats: Stats | None = None
    steps: list[Step] | None = None
    store_id: int | None = None


@dataclass
class History:
    """The turns of one conversation, oldest first."""

    turns: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def last_user_index(self) -> int | None:
        for index in range(len(self.turns) - 1, -1, -1):
            if self.turns[index].role == "user":
                return index
        return None

    def truncate(self, index: int) -> list[Turn]:
        """Drop the turn at ``index`` and every later one; return them."""
        removed, self.turns = self.turns[index:], self.turns[:index]
        return removed

    def messages(self, system_prompt: str = "") -> list[Message]:
        """The model's view: alternating user/assistant turns ending with the last user turn.

        A user turn whose reply failed (or that got no text) is left out with its reply, so
        the roles still alternate; the final user turn is always kept.
        """
        pairs: list[Message] = []
        turns = self.turns
        for index, turn in enumerate(turns):
            if turn.role != "user":
                continue
            reply = turns[index + 1] if index + 1 < len(turns) else None
            if reply is None:
                if index == len(turns) - 1:
                    pairs.append(Message(role="user", content=turn.content))
                continue
            if reply.role != "assistant" or reply.status == "error" or not reply.content.strip():
                continue
            pairs.append(Message(role="user", content=turn.content))
            pairs.append(Message(role="assistant", content=reply.content))
        if system_prompt.strip():
            return [Message(role="system", content=system_prompt.strip()), *pairs]
        return pairs


def fit_context(
    messages: list[Message],
    count_tokens: Callable[[list[Message]], int],
    context_length: int | None,
    max_tokens: int,
) -> tuple[list[Message], int]:
    """Drop the oldest user/assistant pairs until prompt + reply fit the context.

    Returns the messages to send and how many messages were dropped. The system prompt and
    the last user message are always kept (if even they overflow, the backend says so).
    """
    if context_length is None:
        return messages, 0
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(system) :]
    dropped = 0
    while len(body) > 1 and count_tokens(system + body) + max_tokens > context_length:
        body = body[2:]
        dropped += 2
    return system + body, dropped
