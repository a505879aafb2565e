"""Gemma's turn format, for the embedded default model (Gemma 3 270M).

Like Gemma 3's own chat template: the system prompt joins the first user turn, contents are
trimmed, the model's turn is left open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixchat.prompt.messages import split_system


def gemma_prompt(messages: Sequence[Mapping[str, Any]], assistant_prefix: str = "") -> str:
    system, turns = split_system(messages)
    text = "<bos>"
    for index, message in enumerate(turns):
        content = message["content"].strip()
        if index == 0 and system.strip():
            content = f"{system.strip()}\n\n{content}"
        role = "user" if message["role"] == "user" else "model"
        text += f"<start_of_turn>{role}\n{content}<end_of_turn>\n"
    return text + "<start_of_turn>model\n" + assistant_prefix
