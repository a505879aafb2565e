"""The conversation list in the sidebar: search, open, new, rename, delete, export, import."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import panel as pn

from mixchat.store import ConversationSummary, StoreError
from mixchat.ui.render import APP_CSS, text_html
from mixchat.ui.storage import StoreGateway

log = logging.getLogger(__name__)
#: Seconds the delete button waits for its confirming second click.
CONFIRM_SECONDS = 5.0


def _file_name(title: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-")[:40] or "conversation"
    return f"{stem}{suffix}"


class ConversationsPanel:
    """Lists the owner's conversations and acts on the open one."""

    def __init__(
        self,
        gateway: StoreGateway,
        *,
        on_open: Callable[[str], Awaitable[None]],
        on_new: Callable[[], Awaitable[None]],
        current: Callable[[], str | None],
    ) -> None:
        self.gateway = gateway
        self._on_open = on_open
        self._on_new = on_new
        self._current = current
        self._summaries: list[ConversationSummary] = []
        self._shown: tuple[tuple[str, str, bool], ...] = ()
        self._confirm_until = 0.0
        self.search = pn.widgets.TextInput(
            placeholder="Search conversations…", sizing_mode="stretch_width"
        )
        self.new = pn.widgets.Button(
            label="New chat", icon="plus", color="primary", sizing_mode="stretch_width"
        )
        self.items = pn.Column(
            sizing_mode="stretch_width",
            css_classes=["mixchat-conversations"],
            max_height=320,
            scroll=True,
            margin=0,
        )
        self.title = pn.widgets.TextInput(
            label="Title", sizing_mode="stretch_width", placeholder="Rename this conversation"
        )
        self.rename = pn.widgets.Button(label="Rename", icon="pencil", color="light")
        self.delete = pn.widgets.Button(label="Delete", icon="trash", color="light")
        self.export_md = pn.widgets.FileDownload(
            callback=self.markdown_file,
            label="Markdown",
            filename="conversation.md",
            color="light",
            icon="download",
            embed=False,
        )
        self.export_json = pn.widgets.FileDownload(
            callback=self.json_file,
            label="JSON",
            filename="conversation.json",
            color="light",
            icon="download",
            embed=False,
        )
        self.importer = pn.widgets.FileInput(
            accept=".json", multiple=False, sizing_mode="stretch_width"
        )
        self.notice = pn.pane.HTML("", css_classes=["mixchat-hint"], margin=(0, 10))
        self.search.param.watch(self._searched, "value_input")
        self.new.on_click(self._new_clicked)
        self.rename.on_click(self.rename_current)
        self.delete.on_click(self.delete_current)
        self.importer.param.watch(self._imported, "value")

    # -- layout
    def list_section(self) -> pn.Column:
        return pn.Column(
            self.new, self.search, self.items, self.notice, sizing_mode="stretch_width"
        )

    def manage_section(self) -> pn.Column:
        return pn.Column(
            self.title,
            pn.Row(self.rename, self.delete),
            pn.pane.HTML("<b>Export</b>", margin=(8, 10, 0, 10)),
            pn.Row(self.export_md, self.export_json),
            pn.pane.HTML("<b>Import a JSON export</b>", margin=(8, 10, 0, 10)),
            self.importer,
            sizing_mode="stretch_width",
        )

    # -- the list
    async def refresh(self) -> None:
        """Reload the list (newest first), filtered by the search box."""
        if not self.gateway.enabled:
            self._show_disabled()
            return
        found = await self.gateway.list_conversations(self.search.value_input or None)
        if found is None:
            self._show_disabled()
            return
        self._summaries = found
        current = self._current()
        shown = tuple((s.id, s.title, s.id == current) for s in found)
        if shown == self._shown:  # unchanged: do not resend the list to the browser
            return
        self._shown = shown
        buttons = []
        for summary in found:
            button = pn.widgets.Button(
                label=summary.title,
                color="primary" if summary.id == current else "light",
                sizing_mode="stretch_width",
                css_classes=["mixchat-conversation"],
                stylesheets=[APP_CSS],
                description=f"{summary.backend} · {summary.updated_at:%Y-%m-%d %H:%M}",
                margin=(2, 5),
            )
            button.on_click(functools.partial(self._open_clicked, summary.id))
            buttons.append(button)
        self.items.objects = buttons
        if not found:
            self.notice.object = (
                "No conversations yet."
                if not self.search.value_input
                else "No conversation matches."
            )
        else:
            self.notice.object = ""
        for summary in found:
            if summary.id == current:
                self.title.value = summary.title

    async def touched(self, conversation_id: str | None) -> None:
        """The open conversation was just saved: refresh unless it already heads the list.

        Saving moves a conversation to the top; when it is there already (the usual case
        while chatting) the list cannot have changed, so no store query and no page update.
        """
        unfiltered = not self.search.value_input
        if unfiltered and self._shown and self._shown[0][0] == conversation_id:
            return
        await self.refresh()

    def _show_disabled(self) -> None:
        self.items.objects = []
        self.notice.object = text_html(f"History is off: {self.gateway.error}", "mixchat-error")
        for widget in (
            self.search,
            self.rename,
            self.delete,
            self.title,
            self.importer,
            self.export_md,
            self.export_json,
        ):
            widget.disabled = True

    async def _searched(self, _: Any) -> None:
        await self.refresh()

    async def _open_clicked(self, conversation_id: str, _: Any = None) -> None:
        await self._on_open(conversation_id)
        await self.refresh()

    async def _new_clicked(self, _: Any) -> None:
        await self._on_new()
        self.title.value = ""
        await self.refresh()

    # -- the open conversation
    async def rename_current(self, _: Any = None) -> None:
        """Rename the open conversation to the title field's text (the Rename button)."""
        current = self._current()
        title = (self.title.value or "").strip()
        if current and title:
            await self.gateway.rename(current, title)
            await self.refresh()

    async def delete_current(self, _: Any = None) -> None:
        """The Delete button: the first call asks for a second one within CONFIRM_SECONDS,
        which deletes the open conversation."""
        current = self._current()
        if not current:
            return
        loop = asyncio.get_running_loop()
        if loop.time() > self._confirm_until:  # the first click asks for a second one
            self._confirm_until = loop.time() + CONFIRM_SECONDS
            self.delete.param.update(label="Click again to delete", color="danger")
            await asyncio.sleep(CONFIRM_SECONDS)
            self.delete.param.update(label="Delete", color="light")
            return
        self._confirm_until = 0.0
        self.delete.param.update(label="Delete", color="light")
        await self.gateway.delete(current)
        await self._on_new()
        self.title.value = ""
        await self.refresh()

    def markdown_file(self) -> io.StringIO:
        """The open conversation as Markdown (the download button asks for it)."""
        current = self._current()
        text = self.gateway.export_markdown(current) if current else ""
        self.export_md.filename = _file_name(self.title.value or "", ".md")
        return io.StringIO(text)

    def json_file(self) -> io.StringIO:
        """The open conversation as a JSON export (the download button asks for it)."""
        current = self._current()
        data = self.gateway.export_json(current) if current else {}
        self.export_json.filename = _file_name(self.title.value or "", ".json")
        return io.StringIO(json.dumps(data, indent=2, ensure_ascii=False, default=str))

    async def _imported(self, event: Any) -> None:
        if event.new:
            await self.import_file(event.new)

    async def import_file(self, content: bytes) -> None:
        """Import a JSON export and open it; a file that is not one gets a clear notice."""
        try:
            data = json.loads(content)
            new_id = await self.gateway.import_json(data)
        except (ValueError, UnicodeDecodeError):
            self.notice.object = text_html("That file is not a JSON export.", "mixchat-error")
            return
        except StoreError as error:
            self.notice.object = text_html(str(error), "mixchat-error")
            return
        await self._on_open(new_id)
        await self.refresh()
