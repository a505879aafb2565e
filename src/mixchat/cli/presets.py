"""Presets on the command line: ``--preset NAME``, ``/preset NAME``, ``mixchat presets``."""

from __future__ import annotations

import typer

from mixchat.cli.options import with_settings
from mixchat.config import Settings
from mixchat.config.presets import Preset, operator_presets
from mixchat.store import LOCAL_OWNER


def all_presets(settings: Settings) -> list[Preset]:
    """The operator's presets and the local user's saved ones (in the web app)."""
    from mixchat.store import ConversationStore, StoreError
    from mixchat.store.presets import Presets

    try:
        with ConversationStore.from_settings(settings) as store:
            return Presets(settings, store).list(LOCAL_OWNER)
    except StoreError:  # no history database: the operator's presets still work
        return list(operator_presets(settings).values())


def find_preset(settings: Settings, name: str) -> Preset:
    """The preset called ``name``; NotFound (one line, with the names there are) if none."""
    from mixchat.store import NotFound

    found = {preset.name: preset for preset in all_presets(settings)}
    if name not in found:
        raise NotFound(f"no preset {name!r} (presets: {', '.join(found) or 'none yet'})")
    return found[name]


def with_preset(settings: Settings, name: str | None) -> Settings:
    """``settings`` with the named preset applied (none: unchanged)."""
    return find_preset(settings, name).apply(settings) if name else settings


@with_settings
def presets(settings: Settings) -> None:
    """List the presets: the operator's ([presets.NAME] in the config) and your saved ones."""
    found = all_presets(settings)
    if not found:
        typer.echo("No presets yet: save one in the web app, or add [presets.NAME] to the config.")
    for preset in found:
        owner = "operator" if preset.operator else "yours"
        typer.echo(f"{preset.name:<16} ({owner}) {preset.description}".rstrip())
        typer.echo(f"{'':<16} {preset.summary()}")
