"""Conversations that last: SQLite by default, PostgreSQL for several processes or machines.

>>> store = ConversationStore("sqlite:///:memory:")
>>> chat = store.create("local", backend="echo", model=None, settings={})
>>> message_id = store.add_message("local", chat.id, "user", "hello")
>>> [m.content for m in store.get("local", chat.id).messages]
['hello']
"""

from __future__ import annotations

from mixchat.store.errors import NotFound, StoreError
from mixchat.store.records import (
    LOCAL_OWNER,
    ROLES,
    STATUSES,
    Conversation,
    ConversationSummary,
    MessageRecord,
    UsageTotal,
)
from mixchat.store.store import ConversationStore, title_from

__all__ = [
    "LOCAL_OWNER",
    "ROLES",
    "STATUSES",
    "Conversation",
    "ConversationStore",
    "ConversationSummary",
    "MessageRecord",
    "NotFound",
    "StoreError",
    "UsageTotal",
    "title_from",
]
