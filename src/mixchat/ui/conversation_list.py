"""The sidebar's Conversations card as one browser component: the New chat button, the search
box, every item and its menu, a notice line, and the page address.

One ``JSComponent`` draws it all (``items``, one parameter) instead of a Panel button per
conversation and a Panel widget for the button, the search and the notice, so the card costs
the page one Bokeh model. The search box sets ``query`` (debounced in the browser); the
notice (``notice``, ``notice_error``) is shown as text, never as HTML; ``disabled`` (history
is off) disables the search. Each item has a menu: rename (Enter saves), export Markdown or
JSON (the file is sent back and saved by the browser), and delete (a second click confirms).
The browser asks (``open``, ``rename``, ``delete``,
``export``, ``new``, ``address``); :class:`~mixchat.ui.conversations.ConversationsPanel` acts.

The page's address names the open conversation (``?c=ID``): :meth:`ConversationList.address`
sets it (``history.pushState`` when the user moves to another conversation, ``replaceState``
when the open one gets its id or goes away); Back and Forward send ``address`` with the id the
address names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import param
from panel.custom import JSComponent

from mixchat.ui.render import ASSETS_ROUTE

HERE = Path(__file__).parent
#: The query parameter naming the open conversation.
ADDRESS_PARAM = "c"
#: What the browser may ask for; anything else is ignored.
ACTIONS = ("open", "rename", "delete", "export", "new", "address")

ActionHandler = Callable[[str, dict[str, Any]], None]


class ConversationList(JSComponent):
    """The list on screen; ``ConversationsPanel`` sets ``items`` and ``current``."""

    items = param.List(default=[], doc="[id, title, detail] per conversation, newest first")
    current = param.String(default="", doc="the open conversation's id ('' for a new chat)")
    query = param.String(default="", doc="the search box's text (set by the browser)")
    notice = param.String(default="", doc="the line under the list, shown as text")
    notice_error = param.Boolean(default=False, doc="show the notice as an error")
    disabled = param.Boolean(default=False, doc="history is off: no search")

    _esm: ClassVar[Path] = HERE / "conversation_list.js"
    _stylesheets: ClassVar[list[str]] = [  # the sidebar's shared look, then the list's own
        f"/{ASSETS_ROUTE}/sections.css",
        f"/{ASSETS_ROUTE}/conversations.css",
    ]

    def __init__(self, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(**params)
        self.on_action: ActionHandler | None = None
        #: The last address sent (a conversation id, '' for the plain page): a view that
        #: renders after it (a page under load, where the page's first tasks run before the
        #: component's script does) asks for it again.
        self._address: str | None = None

    def say(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` (plain text, not HTML) under the list; ``''`` clears it."""
        self.param.update(notice=text, notice_error=error and bool(text))

    def address(self, conversation_id: str | None, *, push: bool) -> None:
        """Show ``conversation_id`` in the page's address (none: the plain page)."""
        self._address = conversation_id or ""
        self._send(["address", self._address, push])

    def file(self, name: str, mime: str, text: str) -> None:
        """The browser saves this file (an export)."""
        self._send(["file", name, mime, text])

    def _send(self, message: list[Any]) -> None:
        if self._models:  # on a page (a unit test has none)
            self._send_msg(message)

    def _handle_msg(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("type") == "ready":  # the view listens now
            if self._address is not None:  # as a replace: the browser skips one it shows
                self._send(["address", self._address, False])
            return
        if data.get("type") not in ACTIONS:
            return
        if self.on_action is not None:
            self.on_action(data["type"], data)
