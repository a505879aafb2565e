"""The agent's conversation, kept append-only so each step's prompt extends the last one.

system, (earlier turns), user query, assistant JSON, user "Tool Output: ...", assistant JSON,
... A backend with a prefix cache (llama.cpp) then re-uses the KV cache of every earlier step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mixchat.agent.steps import Step
from mixchat.messages import Message


@dataclass
class Memory:
    system: str
    query: str
    history: list[Message] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> None:
        """Keep ``step``; its ``reply`` and ``feedback`` join the conversation."""
        self.steps.append(step)

    def to_messages(self, note: str = "") -> list[Message]:
        """The conversation; ``note`` is appended to its last user turn (the step-limit call)."""
        messages = [
            Message(role="system", content=self.system),
            *self.history,
            Message(role="user", content=self.query),
        ]
        for step in self.steps:
            messages += step.to_messages()
        if note:
            last = messages[-1]
            messages[-1] = Message(role="user", content=f"{last['content']}\n\n{note}")
        return messages


def clean_history(history: Sequence[Mapping[str, object]] | None) -> list[Message]:
    """Earlier user/assistant turns of a chat, in the alternating shape prompts need."""
    turns: list[Message] = []
    for message in history or []:
        role, content = message.get("role"), message.get("content")
        if (role != "user" and role != "assistant") or not isinstance(content, str):
            continue
        if turns and turns[-1]["role"] == role:  # merge, so roles alternate
            turns[-1] = Message(role=role, content=f"{turns[-1]['content']}\n\n{content}")
        else:
            turns.append(Message(role=role, content=content))
    while turns and turns[0]["role"] != "user":
        turns.pop(0)
    if turns and turns[-1]["role"] == "user":  # the query is the next user turn
        turns.pop()
    return turns
