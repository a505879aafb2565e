"""Checks that a conversation has the shape every prompt format needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixchat.messages import Message

#: The roles a prompt format takes (tool results are the agent's to turn into user turns).
ROLES = ("system", "user", "assistant")


def split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Message]]:
    """Validate ``messages``; return the system prompt ("" if none) and the turns.

    Valid: an optional leading system message, then user and assistant turns alternating,
    starting and ending with a user turn. Anything else raises a ``ValueError`` that says
    which message is wrong.
    """
    if not messages:
        raise ValueError("the conversation is empty: it needs at least one user message")
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise ValueError(
                f"message {index} has role {role!r}: expected one of {', '.join(ROLES)}"
            )
        if not isinstance(message.get("content"), str):
            raise ValueError(f"message {index} ({role}) has no text content")
    system = ""
    turns = list(messages)
    if turns[0]["role"] == "system":
        system = turns.pop(0)["content"]
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            position = index + (len(messages) - len(turns))
            raise ValueError(
                f"message {position} is a {message['role']} message where a {expected} message "
                "was expected: after an optional leading system message, user and assistant "
                "messages must alternate, starting with user"
            )
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("the conversation must end with a user message")
    return system, [Message(role=m["role"], content=m["content"]) for m in turns]
