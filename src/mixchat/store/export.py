"""A conversation as a JSON document (export and import) or as Markdown (to read or share).

The JSON export carries a format name and version, so ``parse`` can refuse a file that
is not ours with one clear line instead of importing garbage. Version 2 carries every
branch (each message's ``id`` and ``parent``, and the ``current`` branch's last message)
and each reply's prompt; version 1 files (one linear branch) still import. Markdown prints
the current branch only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mixchat.outcome import plural
from mixchat.store.errors import StoreError
from mixchat.store.records import Conversation, MessageRecord, Role, Stats, Status

FORMAT = "mixchat.conversation"
VERSION = 2
READS = (1, 2)


class ExportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str
    status: Status = "complete"
    stats: dict[str, Any] | None = None
    steps: list[Any] | None = None
    created_at: datetime | None = None
    id: int | None = None
    parent: int | None = None
    prompt: dict[str, Any] | None = None


class ExportedConversation(BaseModel):
    """The export document; unknown top-level keys are ignored so later versions can add some."""

    model_config = ConfigDict(extra="ignore")

    format: Literal["mixchat.conversation"]
    version: Literal[1, 2]
    id: str | None = None
    title: str
    created_at: datetime
    updated_at: datetime
    backend: str
    model: str | None = None
    settings: dict[str, Any] = {}
    system_prompt: str = ""
    messages: list[ExportedMessage]
    current: int | None = None

    @model_validator(mode="after")
    def _a_tree(self) -> ExportedConversation:
        """Give version 1's messages a chain of ids; check every parent comes earlier."""
        if self.version == 1 or all(m.id is None for m in self.messages):
            for index, message in enumerate(self.messages):
                message.id, message.parent = index, index - 1 if index else None
            self.current = None
        seen: set[int] = set()
        for index, message in enumerate(self.messages):
            if message.id is None or message.id in seen:
                raise ValueError(f"messages.{index}.id: missing or repeated")
            if message.parent is not None and message.parent not in seen:
                raise ValueError(f"messages.{index}.parent: not an earlier message")
            seen.add(message.id)
        if self.current is not None and self.current not in seen:
            raise ValueError("current: not a message of this conversation")
        return self


def to_json(conversation: Conversation) -> dict[str, Any]:
    """The export document: plain JSON types, timestamps in ISO 8601 UTC.

    Messages are numbered 1, 2, ... in the document (not the database's ids), so an export
    of an import is the same document.
    """
    number = {m.id: index for index, m in enumerate(conversation.tree, 1)}
    return {
        "format": FORMAT,
        "version": VERSION,
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "backend": conversation.backend,
        "model": conversation.model,
        "settings": conversation.settings,
        "system_prompt": conversation.system_prompt,
        "current": number.get(conversation.leaf_id or 0),
        "messages": [_message_json(m, number) for m in conversation.tree],
    }


def _message_json(message: MessageRecord, number: dict[int, int]) -> dict[str, Any]:
    return {
        "id": number[message.id],
        "parent": None if message.parent_id is None else number[message.parent_id],
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "stats": None if message.stats is None else message.stats.to_dict(),
        "steps": None if message.steps is None else [step.to_dict() for step in message.steps],
        "created_at": message.created_at.isoformat(),
        "prompt": message.prompt,
    }


def parse(data: Any) -> ExportedConversation:
    """The validated export document, or a StoreError naming the first problem."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(f'not a mixchat conversation export (no "format": "{FORMAT}")')
    if data.get("version") not in READS:
        raise StoreError(
            f"unsupported mixchat export version {data.get('version')!r}: "
            f"this mixchat reads versions {', '.join(map(str, READS))}"
        )
    try:
        return ExportedConversation.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = (
            f"{where}: {first['msg']}" if where else first["msg"].removeprefix("Value error, ")
        )
        raise StoreError(f"invalid mixchat conversation export: {problem}") from None


def to_markdown(conversation: Conversation) -> str:
    """The conversation as Markdown: a heading, its settings, then each message in turn."""
    model = f" · {conversation.model}" if conversation.model else ""
    lines = [
        f"# {conversation.title}",
        "",
        f"*{conversation.backend}{model} · {_when(conversation.created_at)}*",
        "",
    ]
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt, ""]
    for message in conversation.messages:
        lines += _message_markdown(message)
    return "\n".join(lines).rstrip() + "\n"


def _message_markdown(message: MessageRecord) -> list[str]:
    lines = [f"## {message.role.capitalize()}", "", message.content or "*(empty)*", ""]
    notes: list[str] = [message.status] if message.status != "complete" else []
    if message.stats is not None:
        notes += _stats_notes(message.stats)
    if notes:
        lines += ["_" + " · ".join(notes) + "_", ""]
    if message.steps:
        steps = [step.to_dict() for step in message.steps]
        lines += [
            f"<details><summary>{len(message.steps)} agent step(s)</summary>",
            "",
            "```json",
            json.dumps(steps, indent=2, ensure_ascii=False),
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _stats_notes(stats: Stats) -> list[str]:
    notes = [plural(stats.completion_tokens, "token")] if stats.completion_tokens else []
    if stats.tokens_per_second is not None:
        notes.append(f"{stats.tokens_per_second:.1f} tokens/s")
    if stats.duration:
        notes.append(f"{stats.duration:.1f} s")
    if stats.error:
        notes.append(stats.error)
    return notes


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
