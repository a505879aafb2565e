"""What the store hands out: plain dataclasses, detached from the database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mixchat.agent.steps import Step
from mixchat.messages import ROLES, Role
from mixchat.outcome import STATUSES, Stats, Status

#: The owner of every conversation when the web app runs without authentication, and in the CLI.
LOCAL_OWNER = "local"


@dataclass
class MessageRecord:
    """One message; ``status`` says whether the reply finished, was stopped, or failed, and
    ``stats`` (with its :class:`~mixchat.outcome.Outcome`) how exactly."""

    id: int
    role: Role
    content: str
    status: Status
    stats: Stats | None
    steps: list[Step] | None
    created_at: datetime
    parent_id: int | None = None
    #: What the model received for this reply (see :mod:`mixchat.prompt.inspect`), or None:
    #: also None where it was not read (``ConversationStore.get(prompts=False)``).
    prompt: dict[str, Any] | None = None
    #: The reply has a recorded prompt (read or not).
    has_prompt: bool = False


@dataclass
class ConversationSummary:
    """A line of the conversation list."""

    id: str
    title: str
    updated_at: datetime
    backend: str
    model: str | None


@dataclass
class Conversation(ConversationSummary):
    """A whole conversation: its settings, its current branch and its tree of messages.

    ``messages`` is the branch last used, oldest first (what the model sees and the faces
    show); ``tree`` is every message of every branch, by id. Editing a message or
    regenerating a reply adds a sibling instead of replacing it.
    """

    owner: str
    created_at: datetime
    settings: dict[str, Any]
    system_prompt: str
    messages: list[MessageRecord] = field(default_factory=list)
    tree: list[MessageRecord] = field(default_factory=list)
    leaf_id: int | None = None

    def message(self, message_id: int) -> MessageRecord:
        for record in self.tree:
            if record.id == message_id:
                return record
        raise KeyError(message_id)

    def children(self, message_id: int | None) -> list[MessageRecord]:
        """The replies to a message (``None``: the first messages), oldest first."""
        return [record for record in self.tree if record.parent_id == message_id]

    def siblings(self, message_id: int) -> list[MessageRecord]:
        """This message and its alternatives (same parent), oldest first: ``‹ 2/3 ›``."""
        return self.children(self.message(message_id).parent_id)

    def path_to(self, message_id: int | None) -> list[MessageRecord]:
        """The branch from the first message down to ``message_id``, oldest first."""
        by_id = {record.id: record for record in self.tree}
        path: list[MessageRecord] = []
        current = message_id
        while current is not None and current in by_id and len(path) <= len(by_id):
            path.append(by_id[current])
            current = by_id[current].parent_id
        return path[::-1]

    def newest_leaf(self, message_id: int | None) -> int | None:
        """The end of the newest branch under ``message_id`` (itself if it has no replies)."""
        current = message_id
        while children := self.children(current):
            current = children[-1].id
        return current


@dataclass(frozen=True)
class UsageTotal:
    """Tokens one user used on one model (over the period asked for)."""

    owner: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


__all__ = [
    "LOCAL_OWNER",
    "ROLES",
    "STATUSES",
    "Conversation",
    "ConversationSummary",
    "MessageRecord",
    "Role",
    "Stats",
    "Status",
    "Step",
    "UsageTotal",
]
