"""``mixchat usage``: tokens in and out per user and model, from the store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer

from mixchat.config import load_settings
from mixchat.store import ConversationStore, StoreError, UsageTotal


def usage(
    user: Annotated[str | None, typer.Option(help="only this user")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="only the last DAYS days (default: all time)")
    ] = None,
) -> None:
    """Tokens each user used on each model (prompt, reply, total), as the app recorded them."""
    since = datetime.now(timezone.utc) - timedelta(days=days) if days else None
    settings = load_settings()
    try:
        with ConversationStore.from_settings(settings) as store:
            totals = store.usage(user, since)
    except StoreError as error:
        typer.echo(f"mixchat: error: {error}", err=True)
        raise typer.Exit(1) from None
    if not totals:
        typer.echo("No usage recorded" + (f" for {user}" if user else "") + ".")
        return
    for line in usage_table(totals):
        typer.echo(line)


def usage_table(totals: list[UsageTotal]) -> list[str]:
    rows = [("user", "model", "requests", "prompt", "reply", "total")] + [
        (
            t.owner,
            t.model,
            str(t.requests),
            str(t.prompt_tokens),
            str(t.completion_tokens),
            str(t.total_tokens),
        )
        for t in totals
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
