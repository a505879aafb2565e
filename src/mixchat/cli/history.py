"""``mixchat history``: list, read, export, delete and import saved conversations.

The CLI is the local user (owner ``local``, as in the web app without authentication);
the database is the settings' one (``MIXCHAT_DATABASE_URL``, else SQLite in the data dir).
Conversation ids may be shortened to any unique prefix, as with git.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from mixchat.config import load_settings
from mixchat.errors import MixchatError
from mixchat.store import LOCAL_OWNER, ConversationStore, ConversationSummary, StoreError

history_app = typer.Typer(
    name="history",
    help="Saved conversations: list, show, export, delete, import.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IdArgument = Annotated[str, typer.Argument(help="conversation id, or a unique prefix of it")]


class ExportFormat(str, Enum):
    md = "md"
    json = "json"


def _fail(message: str) -> NoReturn:
    typer.echo(f"mixchat: error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def open_store() -> Iterator[ConversationStore]:
    """The configured store; any mixchat error inside becomes one line and exit status 1."""
    try:
        with ConversationStore.from_settings(load_settings()) as store:
            yield store
    except MixchatError as error:
        _fail(str(error))


def _line(summary: ConversationSummary) -> str:
    when = summary.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    model = f"/{summary.model}" if summary.model else ""
    return f"{summary.id}  {when}  {summary.backend}{model}  {summary.title}"


@history_app.command("list")
def list_(
    search: Annotated[
        str | None,
        typer.Option(
            "--search", "-s", help="only conversations whose title or messages contain this"
        ),
    ] = None,
) -> None:
    """List conversations, newest first."""
    with open_store() as store:
        conversations = store.list(LOCAL_OWNER, search=search)
    if not conversations:
        typer.echo("no conversations" + (f" matching {search!r}" if search else " yet"), err=True)
    for summary in conversations:
        typer.echo(_line(summary))


@history_app.command()
def show(conversation_id: IdArgument) -> None:
    """Print a conversation, formatted for the terminal."""
    from rich.console import Console
    from rich.markdown import Markdown

    with open_store() as store:
        full_id = store.resolve_id(LOCAL_OWNER, conversation_id)
        markdown = store.export_markdown(LOCAL_OWNER, full_id)
    Console().print(Markdown(markdown))


@history_app.command()
def export(
    conversation_id: IdArgument,
    format_: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="md: to read or share; json: to import again"),
    ] = ExportFormat.md,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
    ] = None,
) -> None:
    """Export a conversation as Markdown or JSON."""
    with open_store() as store:
        full_id = store.resolve_id(LOCAL_OWNER, conversation_id)
        if format_ is ExportFormat.json:
            document = store.export_json(LOCAL_OWNER, full_id)
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            text = store.export_markdown(LOCAL_OWNER, full_id)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror or error}")
    typer.echo(f"wrote {output}", err=True)


@history_app.command()
def delete(
    conversation_id: IdArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a conversation and its messages."""
    with open_store() as store:
        conversation = store.get(LOCAL_OWNER, store.resolve_id(LOCAL_OWNER, conversation_id))
        if not yes and not typer.confirm(
            f"Delete {conversation.title!r} ({len(conversation.messages)} messages)?"
        ):
            _fail("nothing deleted")
        store.delete(LOCAL_OWNER, conversation.id)
    typer.echo(f"deleted {conversation.id}", err=True)


@history_app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="a file written by `mixchat history export --format json`")
    ],
) -> None:
    """Import a conversation exported as JSON; prints its new id."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        _fail(f"cannot read {file}: {error.strerror or error}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        _fail(f"cannot import {file}: not a JSON file ({error})")
    with open_store() as store:
        try:
            new_id = store.import_json(LOCAL_OWNER, data)
        except StoreError as error:
            _fail(f"cannot import {file}: {error}")
    typer.echo(new_id)
