"""The conversation store as the web app uses it: shared per process, never on the event loop.

The store's API is synchronous (SQLAlchemy); every call runs in a worker thread. When the
store cannot open, the chat keeps working with history off and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from mixchat.config import Settings
from mixchat.store import ConversationStore, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

_STORES: dict[str, ConversationStore | StoreError] = {}
_LOCK = threading.Lock()


def _open(settings: Settings) -> ConversationStore:
    """The process's store for this database (opened once; a failure is remembered)."""
    url = settings.database
    with _LOCK:
        if url not in _STORES:
            try:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
                _STORES[url] = ConversationStore.from_settings(settings)
            except StoreError as error:
                log.warning("conversation history is off: %s", error)
                _STORES[url] = error
            except OSError as error:
                _STORES[url] = StoreError(f"cannot create the data directory: {error}")
        found = _STORES[url]
    if isinstance(found, StoreError):
        raise found
    return found


def close_stores() -> None:
    with _LOCK:
        for store in _STORES.values():
            if isinstance(store, ConversationStore):
                store.close()
        _STORES.clear()


class StoreGateway:
    """One session's access to the store, for one owner, in worker threads."""

    def __init__(self, settings: Settings, owner: str) -> None:
        self.settings = settings
        self.owner = owner
        self.error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.error is None

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``store.<method>(owner, *args, **kwargs)`` in a thread; StoreError propagates."""
        return await asyncio.to_thread(self._call_sync, method, *args, **kwargs)

    async def try_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, but a failure turns history off (recorded in ``error``)."""
        if not self.enabled:
            return None
        try:
            return await self.call(method, *args, **kwargs)
        except StoreError as error:
            self.error = str(error)
            return None

    def call_sync(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """For the few places Panel calls synchronously (file downloads)."""
        return self._call_sync(method, *args, **kwargs)

    def _call_sync(self, method: str, *args: Any, **kwargs: Any) -> Any:
        store = _open(self.settings)
        function: Callable[..., Any] = getattr(store, method)
        return function(self.owner, *args, **kwargs)

    async def check(self) -> bool:
        """Open the store; False (and ``error`` set) when history is unavailable."""
        try:
            await asyncio.to_thread(_open, self.settings)
        except StoreError as error:
            self.error = str(error)
        return self.enabled
