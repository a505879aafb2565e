"""A plain ``User:``/``Assistant:`` transcript, for base models that have no chat format.

The embedded default (Gemma 3 270M, a base model) answers sensibly to this and not to
Gemma's instruction-tuned turn markers. Generation stops at the next ``User:`` line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixchat.prompt.messages import split_system

TRANSCRIPT_STOP = "\nUser:"


def transcript_prompt(messages: Sequence[Mapping[str, Any]], assistant_prefix: str = "") -> str:
    system, turns = split_system(messages)
    lines = [system.strip(), ""] if system.strip() else []
    for message in turns:
        speaker = "User" if message["role"] == "user" else "Assistant"
        lines.append(f"{speaker}: {message['content'].strip()}")
    return "\n".join(lines) + "\nAssistant:" + (f" {assistant_prefix}" if assistant_prefix else "")
