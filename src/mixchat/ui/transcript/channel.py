"""The transcript's own websocket: its pushes without Bokeh's work per message.

A push through Panel's ``_send_msg`` costs the server ~1 ms of CPU: a Bokeh document event,
a PATCH-DOC message built, then sent as three websocket frames (header, metadata, content),
each compressed and written as a task of its own. A streamed reply takes ~10 pushes, so that
was a third of an exchange's CPU. This socket carries the same pushes as one frame of JSON
each, written at once: an echo exchange went from 41 to 29 ms of server CPU (33 to 21 ms on
the event loop).

It carries pushes only, server to browser: what the browser says (send, stop...) stays on
Bokeh's websocket, and so does every push until this socket is open, or while it is down.
Every push has a number, so the page applies them in order whichever socket brought them,
drops the ones it already has, and a page that reconnects says which it has last (``seen``):
the transcript sends it the ones it missed (see ``Transcript.listen``).

Who may listen: the transcript's ``channel`` token (random, 144 bits) reaches only its own
page, inside the Bokeh document that the login (if any) protects; an unknown token is
refused (close code 4404). The Origin check is Bokeh's list of allowed page origins, so
another site's page cannot open it either.
"""

from __future__ import annotations

import secrets
import weakref
from typing import Any, Protocol
from urllib.parse import urlparse

from tornado.websocket import WebSocketClosedError, WebSocketHandler

#: Where the page opens it, relative to the page's own address.
ROUTE = "mixchat-transcript"
#: The close code for a token that names no live transcript (a stale tab, a guess).
UNKNOWN = 4404


class Listener(Protocol):
    """A transcript as this socket sees it."""

    def listen(self, socket: TranscriptSocket, seen: int) -> None: ...

    def unlisten(self, socket: TranscriptSocket) -> None: ...


_LISTENERS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register(listener: Listener) -> str:
    """A new token for ``listener`` (held weakly: a closed page's transcript goes)."""
    token = secrets.token_urlsafe(18)
    _LISTENERS[token] = listener
    return token


class TranscriptSocket(WebSocketHandler):
    """One page's transcript socket (a tornado handler; the route is ``ROUTE``)."""

    def initialize(self, compression: int | None = None, origins: tuple[str, ...] = ()) -> None:
        self._compression = compression
        self._origins = {origin.lower() for origin in origins}
        self._listener: Listener | None = None

    def check_origin(self, origin: str) -> bool:
        """The page's own host, or one Bokeh's websocket accepts (a proxy's public name)."""
        return super().check_origin(origin) or urlparse(origin).netloc.lower() in self._origins

    def get_compression_options(self) -> dict[str, Any] | None:
        """Deflate with context takeover, as Bokeh's socket: repeated JSON keys cost bits."""
        if not self._compression:
            return None
        return {"compression_level": self._compression}

    def open(self, *args: str, **kwargs: str) -> None:
        listener = _LISTENERS.get(self.get_query_argument("token", ""))
        if listener is None:
            self.close(UNKNOWN, "no such transcript")
            return
        try:
            seen = int(self.get_query_argument("seen", "0"))
        except ValueError:
            seen = 0
        self._listener = listener
        listener.listen(self, seen)

    def on_message(self, message: str | bytes) -> None:
        """Nothing is read here: the browser speaks on Bokeh's socket."""

    def on_close(self) -> None:
        if self._listener is not None:
            self._listener.unlisten(self)
            self._listener = None

    def push(self, text: str) -> bool:
        """Send one push; False when the socket has closed (the caller falls back)."""
        try:
            written = self.write_message(text)
        except WebSocketClosedError:
            return False
        written.add_done_callback(_quiet)
        return True


def _quiet(written: Any) -> None:
    """A write that failed because the page went: ``on_close`` follows, nothing to log."""
    if not written.cancelled():
        written.exception()


def route(compression: int | None, origins: list[str]) -> tuple[str, type, dict[str, Any]]:
    """The tornado route of the socket, for ``pn.serve(extra_patterns=...)``."""
    options = {"compression": compression, "origins": tuple(origins)}
    return (f"/{ROUTE}", TranscriptSocket, options)
