"""A user's own endpoint, where the operator allows it (``allow_user_endpoints``).

Its API, URL, model and key, as four widgets of the Model section. The key is moved into a
server-side ``SecretStr`` and the widget is cleared at once, so it is never sent back to the
browser, echoed or logged, and no server key is ever sent to that URL (``user_entry``).
Made only where allowed: elsewhere a page has no such widgets, so a browser has nothing to
type a URL or key into, and a new page is that much cheaper to build.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
import param
from pydantic import SecretStr

from mixchat.config import Settings
from mixchat.config.catalog import CatalogEntry, user_entry
from mixchat.errors import MixchatError
from mixchat.ui.render import text_html


class UserEndpointForm:
    """The widgets of a user's endpoint and the catalog entry they make (``entry``)."""

    def __init__(self, base: Settings, changed: Callable[[], object]) -> None:
        self.base = base
        self._changed = changed  # the entry changed: the Model section describes it anew
        self._key: SecretStr | None = None
        #: The endpoint as a catalog entry; None until its URL is set (or while it is wrong).
        self.entry: CatalogEntry | None = None
        self.kind = pn.widgets.Select(
            label="Your endpoint's API",
            options={"OpenAI-compatible": "openai", "Mistral": "mistral"},
            sizing_mode="stretch_width",
        )
        self.base_url = pn.widgets.TextInput(
            label="Your endpoint's URL",
            placeholder="https://api.example.com/v1",
            sizing_mode="stretch_width",
        )
        self.model = pn.widgets.TextInput(
            label="Its model", placeholder="the server's first model", sizing_mode="stretch_width"
        )
        self.api_key = pn.widgets.PasswordInput(
            label="Your API key", placeholder="paste a key", sizing_mode="stretch_width"
        )
        self.key_status = pn.pane.HTML("", css_classes=["mixchat-hint"], margin=(0, 10))
        self.api_key.param.watch(self._take_key, "value")
        for widget in (self.kind, self.base_url, self.model):
            widget.param.watch(self._edited, "value")
        self._show_key_status()

    def widgets(self) -> list[pn.viewable.Viewable]:
        return [self.kind, self.base_url, self.model, self.api_key, self.key_status]

    def _edited(self, *_: object) -> None:
        url = (self.base_url.value or "").strip()
        self.entry = None
        if url:
            try:
                self.entry = user_entry(
                    self.base, self.kind.value, url, self.model.value, self._key
                )
            except MixchatError as error:
                self.key_status.object = text_html(str(error))
                self._changed()
                return
        self._show_key_status()
        self._changed()

    def _take_key(self, event: param.parameterized.Event) -> None:
        """The key moves to the server at once; the widget keeps nothing to send back."""
        if not event.new:
            return
        self.api_key.value = ""
        self._key = SecretStr(event.new.strip())
        self._edited()

    def _show_key_status(self) -> None:
        self.key_status.object = "Key set (kept on the server)." if self._key else "No key set."


__all__ = ["UserEndpointForm"]
