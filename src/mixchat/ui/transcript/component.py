"""The whole chat transcript as one browser component: the server sends facts, the browser draws.

One ``panel.custom.JSComponent`` holds every message on screen and the input box. The
transcript as it was when the page was built travels once, as the ``messages`` parameter;
after that each change is one small custom message (``_send_msg``, read by
``model.on("msg:custom")`` in ``transcript.js``): "append this message", "message 12 grew by
this text", "message 12 finished". No Bokeh model is made per message, so an exchange costs
the server the same at turn 1 and at turn 300.

The server keeps the authoritative copy (``entries``): when a view renders after messages
were pushed (a reconnect, a re-render), it asks for it (``ready``) and gets it whole.

Pushes travel on the transcript's own websocket once the page has opened it (``channel.py``:
one frame of JSON instead of a Bokeh message of three), on Bokeh's before that or while it
is down. Each push is numbered, ``[n, op, op, ...]``, and the page applies them in order
whichever socket brought them.

Wire format: each push is its number then the ops of one event-loop turn (a user's message,
the reply's bubble and its status line travel together); each op is a list,
``[op, *args]``, with ``op`` one of :class:`Op`. Lists
and strings are plain JSON on Bokeh's websocket, while a dict becomes a verbose Bokeh "map"
(and a JS ``Map``): so dicts travel as one JSON string, text deltas as plain strings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import param
from panel.custom import JSComponent
from panel.io.state import set_curdoc

from mixchat.ui.transcript.batching import Batcher
from mixchat.ui.transcript.channel import TranscriptSocket, register

log = logging.getLogger(__name__)

DIST = Path(__file__).parent / "dist"
#: Pushes kept for a page whose transcript socket reconnects (about 25 replies' worth);
#: one that missed more gets the whole transcript instead.
REPLAY = 256
Role = Literal["user", "assistant", "notice"]
#: How a message on screen stands: "streaming" until its reply finishes; "interrupted":
#: the server died while writing it (the text is what was saved).
Shown = Literal["streaming", "complete", "stopped", "error", "interrupted"]


class Op:
    """The first item of each server-to-browser message."""

    APPEND = "a"  # [a, entry JSON]
    DELTA = "d"  # [d, id, text]: the message's text grew
    SET = "s"  # [s, id, {field: value} JSON]: status line, notice, footer, status...
    STEP = "p"  # [p, id, step JSON]: an agent step added or changed (matched by its number)
    REMOVE_FROM = "r"  # [r, id]: this message and every later one are gone
    LOAD = "l"  # [l, [entry, ...] JSON]: the whole transcript
    BUSY = "b"  # [b, bool]: a reply is being written (stop button, Enter is refused)
    INPUT = "i"  # [i, text]: put text in the input box
    HINT = "h"  # [h, text]: a line under the input box
    INSPECT = "x"  # [x, id, prompt JSON]: what the model received for this reply
    CHIPS = "c"  # [c, [chip, ...] JSON]: the documents attached in the input box
    DOCUMENT = "t"  # [t, id, {index, name, text} JSON]: an attached document's text, opened


@dataclass
class StepView:
    """One agent step as a collapsible part of a reply."""

    n: int
    title: str
    state: Literal["running", "success", "failed"] = "running"
    input: str = ""
    output: str = ""
    error: str = ""
    raw: str = ""
    collapsed: bool = False
    gone: bool = False  # removed (the step that only produced the final answer)


@dataclass
class Entry:
    """One message on screen."""

    id: int
    role: Role
    text: str = ""
    name: str = ""
    status: Shown = "complete"
    progress: str = ""  # the status line while a reply waits: queued, loading, thinking
    notice: str = ""  # e.g. older messages no longer fit the context
    footer: str = ""  # the stats line
    error: str = ""
    steps: list[StepView] = field(default_factory=list)
    #: ``[2, 3]``: the second of three versions of this message (``‹ 2/3 ›``); empty: one.
    branch: list[int] = field(default_factory=list)
    #: The reply's prompt was recorded: it has an "Inspect prompt" action.
    inspect: bool = False
    #: The names of the documents sent with a user message (chips that open their text).
    docs: list[str] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The entry as the browser reads it, without empty fields."""
        data = asdict(self)
        data["steps"] = [_compact(step) for step in data["steps"]]
        return _compact(data, keep=("id", "role"))


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _compact(data: dict[str, Any], keep: tuple[str, ...] = ("n",)) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value or key in keep}


#: What the browser asks for: send, stop, regenerate, undo, edit, branch, inspect.
ActionHandler = Callable[[str, dict[str, Any]], None]


class Transcript(JSComponent):
    """The chat on screen. ``ChatController`` drives it through the methods below."""

    messages = param.List(
        default=[], doc="The transcript when the page was built (wire form); then read-only."
    )
    placeholder = param.String(default="Message the model")
    max_document_bytes = param.Integer(
        default=10 * 1024 * 1024, doc="Files larger than this are refused before upload."
    )
    channel = param.String(default="", doc="The token of this transcript's own websocket.")
    seq = param.Integer(default=0, doc="The number of the last push ``messages`` includes.")

    _bundle: ClassVar[Path] = DIST / "transcript.bundle.js"
    _esm: ClassVar[Path] = DIST / "transcript.bundle.js"

    def __init__(self, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_both")
        super().__init__(**params)
        self.entries: list[Entry] = []
        self._next_id = 1
        self._batches: dict[int, Batcher] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._dirty = False  # pushed something the page-build snapshot lacks
        self._outbox: list[list[Any]] = []
        self.on_action: ActionHandler | None = None
        self.updates_sent = 0  # pushes sent (for tests and benchmarks)
        self._pushed = 0  # the number of the last push
        self._recent: deque[tuple[int, str]] = deque(maxlen=REPLAY)
        self._socket: TranscriptSocket | None = None
        self._busy = False
        self.channel = register(self)

    # -- building the page
    def _get_model(self, doc: Any, root: Any = None, parent: Any = None, comm: Any = None) -> Any:
        """The page gets the transcript as it is now, in one parameter."""
        self._flush_all()
        self._outbox = []
        self._recent.clear()
        self.param.update(messages=[entry.wire() for entry in self.entries], seq=self._pushed)
        self._dirty = False
        return super()._get_model(doc, root, parent, comm)

    def _cleanup(self, root: Any = None) -> None:
        """The page went: so does its socket (which holds this transcript alive)."""
        super()._cleanup(root)
        if not self._models and self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- the API ChatController uses
    def append(self, role: Role, text: str = "", *, typed: bool = False, **fields: Any) -> int:
        """Add a message at the end; returns its id.

        ``typed``: the user's message just sent from this page's input box; the browser
        already has its text, so it is not sent back (an exchange's bytes stay near the
        reply's own size).
        """
        entry = Entry(self._next_id, role, text, **fields)
        self._next_id += 1
        self.entries.append(entry)
        wire = entry.wire()
        if typed:
            wire.pop("text", None)
            wire["typed"] = 1
        self._send([Op.APPEND, _json(wire)])
        return entry.id

    def delta(self, entry_id: int, text: str) -> None:
        """The message grew by ``text``; sent in time batches, not one update per token."""
        if not text:
            return
        batch = self._batches.get(entry_id)
        if batch is None:
            batch = self._batches[entry_id] = Batcher()
        batch.add(text)
        wait = batch.wait()
        if wait <= 0:
            self._flush(entry_id)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def set(self, entry_id: int, **changes: Any) -> None:
        """Change fields of a message (its status line, notice...), after its pending text."""
        entry = self._entry(entry_id)
        if entry is None:
            return
        self._flush(entry_id)
        for name, value in changes.items():
            setattr(entry, name, value)
        self._send([Op.SET, entry_id, _json(changes)])

    def finish(self, entry_id: int, status: Shown, footer: str = "", error: str = "") -> None:
        """The reply ended: its last text, then its status and stats line."""
        self._flush(entry_id)
        self._batches.pop(entry_id, None)
        self.set(entry_id, status=status, footer=footer, error=error, progress="")

    def step(self, entry_id: int, step: StepView) -> None:
        """Add or change one agent step of a reply."""
        entry = self._entry(entry_id)
        if entry is None:
            return
        entry.steps = [s for s in entry.steps if s.n != step.n]
        if not step.gone:
            entry.steps.append(replace(step))
            entry.steps.sort(key=lambda s: s.n)
        self._send([Op.STEP, entry_id, _json(_compact(asdict(step)))])

    def remove_from(self, entry_id: int) -> None:
        """Remove this message and every later one."""
        index = next((i for i, e in enumerate(self.entries) if e.id == entry_id), None)
        if index is None:
            return
        for entry in self.entries[index:]:
            self._batches.pop(entry.id, None)
        del self.entries[index:]
        self._send([Op.REMOVE_FROM, entry_id])

    def extend(self, entries: list[Entry]) -> list[int]:
        """Add these messages at the end (ids are renumbered); returns their ids."""
        ids = []
        for entry in entries:
            shown = replace(entry, id=self._next_id)
            self._next_id += 1
            self.entries.append(shown)
            self._send([Op.APPEND, _json(shown.wire())])
            ids.append(shown.id)
        return ids

    def inspector(self, entry_id: int, view: dict[str, Any]) -> None:
        """Show what the model received for this reply, inside it (the browser draws it)."""
        self._send([Op.INSPECT, entry_id, _json(view)])

    def chips(self, chips: list[dict[str, Any]]) -> None:
        """The documents waiting in the input box (name, token count)."""
        self._send([Op.CHIPS, _json(chips)])

    def document(self, entry_id: int, index: int, name: str, text: str) -> None:
        """Open the text of a document sent with this message."""
        self._send([Op.DOCUMENT, entry_id, _json({"index": index, "name": name, "text": text})])

    def load(self, entries: list[Entry]) -> None:
        """Show these messages instead of the current ones (ids are renumbered)."""
        self._batches.clear()
        self.entries = []
        for entry in entries:
            self.entries.append(replace(entry, id=self._next_id))
            self._next_id += 1
        self._send([Op.LOAD, _json([entry.wire() for entry in self.entries])])

    def busy(self, on: bool) -> None:
        self._busy = on
        self._send([Op.BUSY, on])

    def set_input(self, text: str) -> None:
        self._send([Op.INPUT, text])

    def hint(self, text: str) -> None:
        self._send([Op.HINT, text])

    # -- from the browser
    def _process_bokeh_event(self, doc: Any, event: Any) -> None:
        """A browser message (send, stop...), without Panel's busy bookkeeping around it.

        Panel counts every browser event in ``pn.state.busy``, for a busy indicator: ~2 ms of
        parameter updates per event, on the event loop where every session's Enter lands at
        once. This page has no busy indicator (``busy_indicator=None``): the transcript shows
        its own status. (A Panel method; ``test_transcript_events_skip_the_busy_counter``
        checks that it still hands the messages on.)"""
        with set_curdoc(doc):
            self._process_event(event)

    def _handle_msg(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return
        if data["type"] == "ready":
            # Messages pushed before this view listened, or pushes the page waited for in
            # vain (``resync``): send it everything.
            if self._dirty or data.get("resync"):
                self._resync()
            return
        if self.on_action is not None:
            self.on_action(data["type"], data)

    # -- internals
    def _entry(self, entry_id: int) -> Entry | None:
        return next((entry for entry in reversed(self.entries) if entry.id == entry_id), None)

    def _send(self, message: list[Any]) -> None:
        """Queue one op; the ops of one event-loop turn travel as one websocket message."""
        self._dirty = True
        if not self._models:
            return  # not on a page yet: the page-build snapshot will carry it
        self._outbox.append(message)
        if len(self._outbox) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._drain)
            except RuntimeError:  # no event loop (a script or a test): send now
                self._drain()

    def _drain(self) -> None:
        ops, self._outbox = self._outbox, []
        if not ops or not self._models:
            return
        self.updates_sent += 1
        self._pushed += 1
        push = [self._pushed, *ops]
        text = _json(push)
        self._recent.append((self._pushed, text))
        if self._socket is not None and self._socket.push(text):
            return
        self._socket = None  # none yet, or it closed: Bokeh's socket until the page reopens it
        self._send_msg(push)

    def _resync(self) -> None:
        """The whole transcript, and whether a reply is being written, as one push."""
        self._flush_all()
        self._send([Op.LOAD, _json([entry.wire() for entry in self.entries])])
        self._send([Op.BUSY, self._busy])

    # -- the transcript's own websocket (channel.py)
    def listen(self, socket: TranscriptSocket, seen: int) -> None:
        """The page opened its socket, having applied pushes up to ``seen``: later pushes go
        there, and the ones it missed go first (or, if they are gone, everything)."""
        if self._socket is not None and self._socket is not socket:
            self._socket.close()  # one listener: the newest
        self._socket = socket
        oldest = self._recent[0][0] if self._recent else self._pushed + 1
        if seen >= self._pushed:
            return
        if seen + 1 < oldest:
            self._resync()
            return
        for number, text in self._recent:
            if number > seen and not socket.push(text):
                return

    def unlisten(self, socket: TranscriptSocket) -> None:
        if self._socket is socket:
            self._socket = None

    def _flush(self, entry_id: int) -> None:
        batch = self._batches.get(entry_id)
        entry = self._entry(entry_id)
        if batch is None or not batch.pending or entry is None:
            return
        text = batch.take()
        entry.text += text
        self._send([Op.DELTA, entry_id, text])

    def _flush_all(self) -> None:
        for entry_id in list(self._batches):
            self._flush(entry_id)

    def _on_timer(self) -> None:
        self._timer = None
        due = [i for i, b in self._batches.items() if b.pending and b.wait() <= 0.005]
        for entry_id in due:
            self._flush(entry_id)
        waits = [b.wait() for b in self._batches.values() if b.pending]
        if waits:
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, min(waits)), self._on_timer
            )
