"""The conversation a session holds: the branch on screen, what the model is sent.

Pure logic, no Panel: the chat callback builds every request from here, so the whole
conversation goes to the model each turn (not only the last message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    #: ``(2, 3)``: the second of three versions of this message (same parent in the store).
    branch: tuple[int, int] | None = None
    #: What the model received for this reply (a PromptRecord's dict), if recorded.
    prompt: dict[str, Any] | None = None


@dataclass
class History:
    """The turns of one conversation, oldest first."""

    turns: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def index_of(self, turn: Turn) -> int | None:
        return next((i for i, t in enumerate(self.turns) if t is turn), None)

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

        A user turn whose reply failed, was cut by a crash (``interrupted``) or got no text is
        left out with its reply, so the roles still alternate; the final user turn is always
        kept.
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
            if (
                reply.role != "assistant"
                or reply.status in ("error", "interrupted")
                or not reply.content.strip()
            ):
                continue
            pairs.append(Message(role="user", content=turn.content))
            pairs.append(Message(role="assistant", content=reply.content))
        if system_prompt.strip():
            return [Message(role="system", content=system_prompt.strip()), *pairs]
        return pairs
