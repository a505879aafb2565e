"""``mixchat prompt``: what the model received for a conversation's last reply."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mixchat.cli.history import open_store
from mixchat.prompt.inspector import PromptRecord
from mixchat.store import LOCAL_OWNER


def prompt(
    conversation: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="conversation id or prefix; default: the last"),
    ] = None,
    ids: Annotated[bool, typer.Option("--ids", help="print the token ids, one line")] = False,
) -> None:
    """Show exactly what the model received for the last reply: the prompt text (or the
    messages a server was sent), its tokens, what was dropped to fit, and the sampling."""
    with open_store() as store:
        if conversation is None:
            listed = store.list(LOCAL_OWNER)
            if not listed:
                raise typer.BadParameter("no stored conversation")
            conversation_id = listed[0].id
        else:
            conversation_id = store.resolve_id(LOCAL_OWNER, conversation)
        branch = store.branch_path(LOCAL_OWNER, conversation_id)
    replies = [m for m in branch if m.role == "assistant" and m.prompt]
    if not replies:
        typer.echo(
            f"mixchat: error: no reply in {conversation_id[:8]} has a recorded prompt", err=True
        )
        raise typer.Exit(1)
    record = PromptRecord.from_dict(replies[-1].prompt or {})
    if ids:
        if record.token_ids is None:
            typer.echo(
                f"mixchat: error: the {record.backend} backend sends messages, not token ids",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(" ".join(map(str, record.token_ids)))
        return
    typer.echo(_describe(record, conversation_id))


def _describe(record: PromptRecord, conversation_id: str) -> str:
    tokens = f"{record.token_count} prompt tokens" if record.token_count is not None else ""
    if record.equals_mistral_common is not None:
        same = "equal" if record.equals_mistral_common else "DIFFER FROM"
        tokens += f"; the ids {same} mistral-common's"
    sampling = " ".join(
        f"{key}={value}" for key, value in record.sampling.items() if value is not None
    )
    lines = [
        f"conversation {conversation_id[:8]} ({record.destination})",
        tokens,
        f"sampling: {sampling}",
    ]
    if record.dropped:
        lines.append(f"dropped to fit the context: the {len(record.dropped)} oldest messages")
    if record.text is not None:
        lines += ["", record.text]
    else:
        lines += ["", json.dumps(record.messages, indent=2, ensure_ascii=False)]
    return "\n".join(line for line in lines if line is not None)
