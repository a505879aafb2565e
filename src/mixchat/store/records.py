"""What the store hands out: plain dataclasses, detached from the database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

Role = Literal["system", "user", "assistant", "tool"]
Status = Literal["complete", "stopped", "error"]

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
STATUSES: tuple[str, ...] = ("complete", "stopped", "error")

#: A reply's numbers (tokens, speed, finish reason...) and an agent's steps, as JSON.
Stats: TypeAlias = dict[str, Any]
Steps: TypeAlias = list[Any]

#: The owner of every conversation when the web app runs without authentication, and in the CLI.
LOCAL_OWNER = "local"


@dataclass
class MessageRecord:
    """One message; ``status`` says whether the reply finished, was stopped, or failed."""

    id: int
    role: str
    content: str
    status: str
    stats: Stats | None
    steps: Steps | None
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
