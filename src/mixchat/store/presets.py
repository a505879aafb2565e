"""Users' presets in the store: saved, listed, replaced and deleted per owner.

The operator's presets (the config file's ``[presets.NAME]``) come first and cannot be
changed here: a user's preset may not take one of their names.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select

from mixchat.config import Settings
from mixchat.config.presets import Preset, operator_presets, preset_from
from mixchat.errors import ConfigError
from mixchat.store.errors import NotFound, StoreError
from mixchat.store.models import PresetRow, utcnow
from mixchat.store.store import ConversationStore


class Presets:
    """The operator's presets and each user's own, in a store's database (``store`` may be a
    function that opens it, called on first use)."""

    def __init__(
        self, settings: Settings, store: ConversationStore | Callable[[], ConversationStore]
    ) -> None:
        self.operator = operator_presets(settings)
        self._store = store

    @property
    def store(self) -> ConversationStore:
        if not isinstance(self._store, ConversationStore):
            self._store = self._store()
        return self._store

    def list(self, owner: str) -> list[Preset]:
        """The operator's presets, then the owner's own, each by name."""
        query = select(PresetRow).where(PresetRow.owner == owner).order_by(PresetRow.name)
        with self.store._read("listing presets") as session:
            rows = list(session.scalars(query))
        own = []
        for row in rows:
            try:
                own.append(preset_from(row.name, row.data))
            except ConfigError:  # written by another version: skip it, keep the rest
                continue
        return [*self.operator.values(), *(p for p in own if p.name not in self.operator)]

    def get(self, owner: str, name: str) -> Preset:
        """The preset of that name; NotFound lists the names there are."""
        found = {preset.name: preset for preset in self.list(owner)}
        if name not in found:
            names = ", ".join(found) or "none yet"
            raise NotFound(f"no preset {name!r} (presets: {names})")
        return found[name]

    def save(self, owner: str, preset: Preset) -> Preset:
        """Save (or replace) one of the owner's presets."""
        if preset.name in self.operator:
            raise StoreError(f"{preset.name!r} is the operator's preset: choose another name")
        with self.store._write("saving a preset") as session:
            row = session.scalars(
                select(PresetRow).where(PresetRow.owner == owner, PresetRow.name == preset.name)
            ).one_or_none()
            if row is None:
                row = PresetRow(owner=owner, name=preset.name, data={}, updated_at=utcnow())
                session.add(row)
            row.data = preset.stored()
            row.updated_at = utcnow()
        return preset.model_copy(update={"operator": False})

    def delete(self, owner: str, name: str) -> None:
        if name in self.operator:
            raise StoreError(f"{name!r} is the operator's preset: it cannot be deleted")
        with self.store._write("deleting a preset") as session:
            result = session.execute(
                delete(PresetRow).where(PresetRow.owner == owner, PresetRow.name == name)
            )
            if not getattr(result, "rowcount", 1):
                raise NotFound(f"no preset {name!r} of yours")
