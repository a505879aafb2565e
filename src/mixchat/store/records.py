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
    """A whole conversation: its settings and its messages, oldest first."""

    owner: str
    created_at: datetime
    settings: dict[str, Any]
    system_prompt: str
    messages: list[MessageRecord] = field(default_factory=list)


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
