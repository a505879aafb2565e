"""The conversation store as the web app uses it: shared per process, never on the event loop.

The store's API is synchronous (SQLAlchemy); every call runs in a worker thread. When the
store cannot open, the chat keeps working with history off and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from mixchat.agent.steps import Step
from mixchat.config import Settings
from mixchat.config.presets import Preset
from mixchat.messages import Role
from mixchat.outcome import Stats, Status
from mixchat.store import (
    Conversation,
    ConversationStore,
    ConversationSummary,
    MessageRecord,
    StoreError,
)
from mixchat.store.errors import NotFound
from mixchat.store.presets import Presets
from mixchat.store.progress import ReplyProgress
from mixchat.store.store import CURRENT

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
    """One session's access to the store, for one owner: one typed method per operation,
    each run in a worker thread.

    The methods return None (or do nothing) when history is off, and turn history off when a
    write fails: the chat goes on and says so once, through ``error``. Only :meth:`import_json`
    raises, because the user asked for it and should see why it failed.
    """

    def __init__(self, settings: Settings, owner: str) -> None:
        self.settings = settings
        self.owner = owner
        self.error: str | None = None
        #: Called with each conversation this session creates (the list shows it at once).
        self.on_created: Callable[[Conversation], None] | None = None
        #: Called with a conversation deleted because its last message was removed.
        self.on_emptied: Callable[[str], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.error is None

    async def check(self) -> bool:
        """Open the store; False (and ``error`` set) when history is unavailable."""
        try:
            await asyncio.to_thread(_open, self.settings)
        except StoreError as error:
            self.error = str(error)
        return self.enabled

    # -- conversations

    async def list_conversations(
        self, search: str | None = None
    ) -> list[ConversationSummary] | None:
        return await self._try(lambda store: store.list(self.owner, search))

    async def get(self, conversation_id: str) -> Conversation | None:
        """None when history is off, or the owner has no such conversation. Without the
        replies' prompts (``prompt`` reads one when the page asks to inspect it)."""
        return await self._try(lambda store: store.get(self.owner, conversation_id, prompts=False))

    async def prompt(self, message_id: int) -> dict[str, Any] | None:
        """The prompt recorded with this stored reply; None when there is none (or no store)."""
        return await self._try(lambda store: store.prompt(self.owner, message_id))

    async def owns(self, conversation_id: str) -> bool:
        """Whether the owner has this conversation (one small query; no messages read)."""

        def found(store: ConversationStore) -> bool:
            return store.resolve_id(self.owner, conversation_id) == conversation_id

        return bool(await self._try(found))

    async def create(
        self,
        *,
        title: str,
        backend: str,
        model: str | None,
        settings: dict[str, Any],
        system_prompt: str,
    ) -> Conversation | None:
        created = await self._try(
            lambda store: store.create(
                self.owner,
                title=title,
                backend=backend,
                model=model,
                settings=settings,
                system_prompt=system_prompt,
            )
        )
        if created is not None and self.on_created is not None:
            self.on_created(created)
        return created

    async def update_settings(
        self,
        conversation_id: str,
        *,
        backend: str,
        model: str | None,
        settings: dict[str, Any],
        system_prompt: str,
    ) -> None:
        await self._try(
            lambda store: store.update_settings(
                self.owner,
                conversation_id,
                backend=backend,
                model=model,
                settings=settings,
                system_prompt=system_prompt,
            )
        )

    async def rename(self, conversation_id: str, title: str) -> None:
        await self._try(lambda store: store.rename(self.owner, conversation_id, title))

    async def delete(self, conversation_id: str) -> None:
        await self._try(lambda store: store.delete(self.owner, conversation_id))

    # -- messages

    async def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        status: Status = "complete",
        stats: Stats | None = None,
        steps: Sequence[Step] | None = None,
        parent: int | None | Literal["current"] = CURRENT,
        prompt: dict[str, Any] | None = None,
    ) -> int | None:
        """The new message's id, or None when it was not saved. ``parent``: the message it
        answers (an edit or a regenerated reply gives an earlier one: a new branch)."""
        return await self._try(
            lambda store: store.add_message(
                self.owner,
                conversation_id,
                role,
                content,
                status=status,
                stats=stats,
                steps=steps,
                parent=parent,
                prompt=prompt,
            )
        )

    async def select_branch(
        self, conversation_id: str, message_id: int
    ) -> Sequence[MessageRecord] | None:
        """Make the branch through this message current; its messages, oldest first."""
        return await self._try(
            lambda store: store.select_branch(self.owner, conversation_id, message_id)
        )

    async def start_reply(
        self, conversation_id: str, parent: int | None | Literal["current"]
    ) -> ReplyProgress | None:
        """Store a reply as it starts (``streaming``), saved every few seconds from then on."""
        if not self.enabled:
            return None
        try:
            store = await asyncio.to_thread(_open, self.settings)
            return await ReplyProgress.start(store, self.owner, conversation_id, parent=parent)
        except StoreError as error:
            self.error = str(error)
            return None

    async def finish_reply(
        self,
        progress: ReplyProgress,
        stats: Stats,
        *,
        content: str,
        steps: Sequence[Step] | None,
        prompt: dict[str, Any] | None,
    ) -> None:
        """The reply's final text, status, stats, steps and prompt."""
        try:
            await progress.finish(stats, content=content, steps=steps, prompt=prompt)
        except StoreError as error:
            self.error = str(error)

    async def delete_messages_from(self, conversation_id: str, message_id: int) -> None:
        """Remove the message and its replies; a conversation left with no message is deleted
        (an undo of the only turn leaves nothing behind) and ``on_emptied`` hears of it."""

        def delete(store: ConversationStore) -> bool:
            store.delete_messages_from(self.owner, conversation_id, message_id)
            if store.get(self.owner, conversation_id, prompts=False).tree:
                return False
            store.delete(self.owner, conversation_id)
            return True

        if await self._try(delete) and self.on_emptied is not None:
            self.on_emptied(conversation_id)

    # -- presets (the operator's and this owner's; see mixchat.store.presets)

    async def list_presets(self) -> list[Preset] | None:
        return await self._try(lambda store: Presets(self.settings, store).list(self.owner))

    async def save_preset(self, preset: Preset) -> Preset:
        """The saved preset; StoreError says why not (an operator's name, a store failure)."""
        return await asyncio.to_thread(
            lambda: Presets(self.settings, _open(self.settings)).save(self.owner, preset)
        )

    async def delete_preset(self, name: str) -> None:
        """StoreError says why not (the operator's, or not there)."""
        await asyncio.to_thread(
            lambda: Presets(self.settings, _open(self.settings)).delete(self.owner, name)
        )

    # -- export and import

    def export_markdown(self, conversation_id: str) -> str:
        """Synchronous: Panel's file download asks for the file in a plain callback."""
        return _open(self.settings).export_markdown(self.owner, conversation_id)

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """Synchronous, like :meth:`export_markdown`."""
        return _open(self.settings).export_json(self.owner, conversation_id)

    async def import_json(self, data: Any) -> str:
        """The imported conversation's id; StoreError says why a file was refused."""
        return await asyncio.to_thread(lambda: _open(self.settings).import_json(self.owner, data))

    async def _try(self, operation: Callable[[ConversationStore], T]) -> T | None:
        """``operation(store)`` in a thread; a StoreError turns history off (see ``error``)."""
        if not self.enabled:
            return None
        try:
            return await asyncio.to_thread(lambda: operation(_open(self.settings)))
        except NotFound:  # not this owner's (or gone): nothing wrong with the store
            return None
        except StoreError as error:
            self.error = str(error)
            return None
