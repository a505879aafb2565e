"""API keys: made per user, shown once, stored as a SHA-256 hash, revoked by id.

A key is 32 random bytes, so a plain hash is as good as a slow one (there is nothing to
guess), and a lookup by hash never compares secrets in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mixchat.store.errors import NotFound
from mixchat.store.models import ApiKeyRow, utcnow
from mixchat.store.store import ConversationStore

PREFIX = "mxc-"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    owner: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeys:
    """The API keys in a store's database; ``store`` may be a function that opens it, called
    on first use (and again after a failure: a database server that comes back is used)."""

    def __init__(self, store: ConversationStore | Callable[[], ConversationStore]) -> None:
        self._store = store

    @property
    def store(self) -> ConversationStore:
        if not isinstance(self._store, ConversationStore):
            self._store = self._store()
        return self._store

    def create(self, owner: str) -> tuple[ApiKeyRecord, str]:
        """A new key for ``owner``: its record, and the key itself (never stored)."""
        key = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(id=secrets.token_hex(6), owner=owner, hash=_hash(key), created_at=utcnow())
        with self.store._write("creating an API key") as session:
            session.add(row)
        return _record(row), key

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if owner is not None:
            query = query.where(ApiKeyRow.owner == owner)
        with self.store._read("listing API keys") as session:
            return [_record(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> ApiKeyRecord:
        with self.store._write("revoking an API key") as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}: see `mixchat api-key list`")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    def user_for(self, key: str) -> str | None:
        """The owner of a valid, unrevoked key; None for any other text."""
        with self.store._read("checking an API key") as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.hash == _hash(key))).first()
        return row.owner if row is not None and row.revoked_at is None else None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(row.id, row.owner, row.created_at, row.revoked_at)
