"""The store's errors: one line each, naming the database (never its password) and what to do."""

from __future__ import annotations

from mixchat.errors import MixchatError


class StoreError(MixchatError):
    """The database cannot be opened, read or written, or an import file is not ours."""


class NotFound(StoreError, KeyError):
    """No such conversation or message for this owner (also when another owner has it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"
