"""``mixchat api-key``: make, list and revoke the keys of the OpenAI-compatible API.

A key is printed once, when it is made; the store keeps only its hash. With a login on
``mixchat serve`` the API wants ``Authorization: Bearer KEY`` and acts as the key's user.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mixchat.config import load_settings
from mixchat.store import ConversationStore
from mixchat.store.api_keys import ApiKeys

api_key_app = typer.Typer(
    name="api-key",
    help="Keys of the OpenAI-compatible API: create, list, revoke.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _keys() -> ApiKeys:
    return ApiKeys(ConversationStore.from_settings(load_settings()))


@api_key_app.command()
def create(user: Annotated[str, typer.Argument(help="the login name the key acts as")]) -> None:
    """Make a key for USER and print it (once: only its hash is stored)."""
    record, key = _keys().create(user)
    typer.echo(f"API key {record.id} for {user} (shown once, keep it secret):", err=True)
    typer.echo(key)


@api_key_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option(help="only this user's keys")] = None,
) -> None:
    """List keys: id, user, created, and whether revoked (never the keys themselves)."""
    for record in _keys().list(user):
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        typer.echo(f"{record.id}  {record.owner:<20} {record.created_at:%Y-%m-%d %H:%M}  {state}")


@api_key_app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id, from `list`")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    record = _keys().revoke(key_id)
    typer.echo(f"revoked API key {record.id} of {record.owner}")
