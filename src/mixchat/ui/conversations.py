"""The conversation list in the sidebar: search, open, new, and each item's menu (rename,
delete, export), import; the page's address names the open conversation (``?c=ID``).

The button, the search box, the list and its notice line are one browser component
(:class:`~mixchat.ui.conversation_list.ConversationList`); import is a Panel ``FileInput`` in
a card of its own, whose errors show on the list's notice line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import panel as pn

from mixchat.store import ConversationSummary, StoreError
from mixchat.ui.conversation_list import ConversationList
from mixchat.ui.storage import StoreGateway

log = logging.getLogger(__name__)
#: Shown instead of a conversation that is not this user's (deleted, mistyped, someone else's).
NOT_FOUND = (
    "No conversation of yours has this address (it was deleted, or belongs to someone "
    "else), so this is a new chat."
)


def _file_name(title: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-")[:40] or "conversation"
    return f"{stem}{suffix}"


class ConversationsPanel:
    """Lists the owner's conversations, acts on each, and keeps the page address in step."""

    def __init__(
        self,
        gateway: StoreGateway,
        *,
        on_open: Callable[[str], Awaitable[None]],
        on_new: Callable[[], Awaitable[None]],
        current: Callable[[], str | None],
        say: Callable[[str], None] | None = None,
        forget: Callable[[], None] | None = None,
    ) -> None:
        """``say`` shows a line in the chat; ``forget`` makes the chat start a new stored
        conversation with its next message (its own was deleted under it)."""
        self.gateway = gateway
        self._on_open = on_open
        self._on_new = on_new
        self._current = current
        self._say = say or (lambda text: None)
        self._forget = forget or (lambda: None)
        self._tasks: set[asyncio.Future[None]] = set()
        # the New chat button, the search box and the notice line are the list's own
        self.items = ConversationList(margin=0)
        self.items.on_action = self._action
        #: Made when the Import section is first opened (``import_section``).
        self.importer: pn.widgets.FileInput | None = None
        self.items.param.watch(self._searched, "query")
        gateway.on_created = self._created
        gateway.on_emptied = self._emptied

    # -- layout
    def list_section(self) -> ConversationList:
        """New chat, the search box, the list and its notice line: one component."""
        return self.items

    def import_section(self) -> pn.Column:
        self.importer = pn.widgets.FileInput(
            accept=".json",
            multiple=False,
            sizing_mode="stretch_width",
            disabled=self.items.disabled,  # history is off
        )
        self.importer.param.watch(self._imported, "value")
        return pn.Column(
            pn.pane.HTML("A JSON export of mixchat", margin=(0, 10), css_classes=["mixchat-hint"]),
            self.importer,
            sizing_mode="stretch_width",
        )

    # -- the list
    @property
    def titles(self) -> list[str]:
        """The titles shown, in order (for tests)."""
        return [item[1] for item in self.items.items]

    @property
    def query(self) -> str:
        """What the search box says."""
        return self.items.query.strip()

    async def refresh(self) -> None:
        """Reload the list (newest first), filtered by the search box."""
        if not self.gateway.enabled:
            self._show_disabled()
            return
        query = self.query
        found = await self.gateway.list_conversations(query or None)
        if found is None:
            self._show_disabled()
            return
        if query != self.query:  # typed on meanwhile: the newer search shows its own
            return
        self._show([_item(summary) for summary in found])
        if not found:
            self.items.say("No conversation matches." if query else "No conversations yet.")
        else:
            self.items.say("")

    def _show(self, items: list[list[str]], current: str | None = None) -> None:
        """Send the list and the open id, each only when it changed."""
        current = current or self._current() or ""
        if items != self.items.items:
            self.items.items = items
        if current != self.items.current:
            self.items.current = current

    async def touched(self, conversation_id: str | None) -> None:
        """The open conversation was just saved: refresh unless it already heads the list.

        Saving moves a conversation to the top; when it is there already (the usual case
        while chatting) the list cannot have changed, so no store query and no page update.
        """
        unfiltered = not self.query
        items = self.items.items
        if unfiltered and items and items[0][0] == conversation_id:
            self._show(items)
            return
        await self.refresh()

    def _show_disabled(self) -> None:
        self.items.items = []
        self.items.say(f"History is off: {self.gateway.error}", error=True)
        self.items.disabled = True
        if self.importer is not None:
            self.importer.disabled = True

    def _searched(self, _: Any) -> None:
        self._spawn(self.refresh())  # the search box changed (see wait)

    # -- the page address
    async def open_address(self, conversation_id: str) -> None:
        """The page was loaded with ``?c=ID``: open it, or say it is not there."""
        if await self.gateway.owns(conversation_id):
            await self._on_open(conversation_id)
        if self._current() != conversation_id:
            self._say(NOT_FOUND)
            self.items.address(None, push=False)
        self._show(self.items.items)

    def _created(self, summary: ConversationSummary) -> None:
        """The chat's first message made a conversation: list it and give the page its address."""
        self.items.address(summary.id, push=False)
        if self.query:  # a filtered list: it shows up when the search is cleared
            return
        self.items.say("")
        self._show([_item(summary), *self.items.items], current=summary.id)

    def _emptied(self, conversation_id: str) -> None:
        """Undo removed the conversation's only turn: it is deleted, the chat starts afresh."""
        if self._current() == conversation_id:
            self._forget()
            self.items.address(None, push=False)
        self._spawn(self.refresh())

    # -- what the browser asks for
    def _action(self, kind: str, data: dict[str, Any]) -> None:
        conversation_id = data.get("id")
        if kind == "new":
            self._spawn(self._new_clicked())
            return
        if kind == "address":  # Back or Forward: open what the address names
            if isinstance(conversation_id, str):
                self._spawn(self._moved(conversation_id))
            return
        if not isinstance(conversation_id, str) or conversation_id not in self._ids():
            return  # only conversations this page lists
        if kind == "open":
            self._spawn(self.open(conversation_id))
        elif kind == "rename":
            self._spawn(self.rename(conversation_id, str(data.get("title", ""))))
        elif kind == "delete":
            self._spawn(self.delete(conversation_id))
        elif kind == "export":
            self._spawn(self.export(conversation_id, str(data.get("format", "md"))))

    def _ids(self) -> set[str]:
        return {item[0] for item in self.items.items}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until what the browser asked for is done (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def open(self, conversation_id: str) -> None:
        """Open a listed conversation; the address names it (Back returns to the one before)."""
        await self._on_open(conversation_id)
        if self._current() == conversation_id:
            self.items.address(conversation_id, push=True)
        await self.refresh()

    async def _moved(self, conversation_id: str) -> None:
        if conversation_id == (self._current() or ""):
            return
        if conversation_id:
            await self._on_open(conversation_id)
        else:
            await self._on_new()
        await self.refresh()

    async def _new_clicked(self, _: Any = None) -> None:
        await self._on_new()
        # at once, not after the refresh's store query: nothing in the list is open now
        self._show(self.items.items)
        self.items.address(None, push=True)
        await self.refresh()

    async def rename(self, conversation_id: str, title: str) -> None:
        """Rename a conversation (its menu's Rename, then Enter)."""
        if title.strip():
            await self.gateway.rename(conversation_id, title.strip())
            await self.refresh()

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation (its menu's Delete, clicked twice); the open one: a new chat."""
        await self.gateway.delete(conversation_id)
        if self._current() == conversation_id:
            await self._on_new()
            self.items.address(None, push=False)
        await self.refresh()

    async def export(self, conversation_id: str, kind: str) -> None:
        """Send the conversation to the browser as a file: Markdown, or a JSON export."""
        title = next((item[1] for item in self.items.items if item[0] == conversation_id), "")
        try:
            if kind == "json":
                data = await asyncio.to_thread(self.gateway.export_json, conversation_id)
                text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
                self.items.file(_file_name(title, ".json"), "application/json", text)
            else:
                text = await asyncio.to_thread(self.gateway.export_markdown, conversation_id)
                self.items.file(_file_name(title, ".md"), "text/markdown", text)
        except StoreError as error:
            self.items.say(f"Cannot export it: {error}", error=True)

    async def _imported(self, event: Any) -> None:
        if event.new:
            await self.import_file(event.new)

    async def import_file(self, content: bytes) -> None:
        """Import a JSON export and open it; a file that is not one gets a clear notice."""
        try:
            data = json.loads(content)
            new_id = await self.gateway.import_json(data)
        except (ValueError, UnicodeDecodeError):
            self.items.say("That file is not a JSON export.", error=True)
            return
        except StoreError as error:
            self.items.say(str(error), error=True)
            return
        await self.open(new_id)


def _item(summary: ConversationSummary) -> list[str]:
    """One list item as the browser reads it: id, title, and a tooltip."""
    return [summary.id, summary.title, f"{summary.backend} · {summary.updated_at:%Y-%m-%d %H:%M}"]
