"""Batch streamed text so that a long reply costs about its own size on the websocket.

Each update is a websocket message with ~280 bytes of framing on top of the appended text
(Panel's streaming Markdown sends only the new part), so one update per token costs many
times the reply. Updates come fast at the start of a reply (the reader is waiting for it),
then each must carry a growing batch of text, up to ``MAX_BATCH`` characters, which keeps the
framing below the text itself; ``MAX_WAIT`` bounds how long text is held back on a slow model.
Pure logic with an injectable clock, for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Bytes of framing each update costs on top of its text (measured on Panel 1.9).
FRAME_BYTES = 280
#: The shortest time between two updates.
UPDATE_INTERVAL = 0.05
#: An update waits for new text of at least this share of the text already shown...
GROWTH = 0.25
#: ...but never for more characters than this...
MAX_BATCH = 240
#: ...nor for longer than this many seconds.
MAX_WAIT = 1.0


class Throttle:
    """Collects text; :meth:`push` says when the pending text should be flushed."""

    def __init__(
        self,
        interval: float = UPDATE_INTERVAL,
        max_wait: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_wait = max(interval, max_wait)
        self._clock = clock
        self._last = -float("inf")
        self.text = ""  # all text so far
        self.shown = 0  # characters already flushed

    def push(self, delta: str) -> bool:
        """Add ``delta``; True when it is time to show the text (then call :meth:`flushed`)."""
        self.text += delta
        waited = self._clock() - self._last
        if not self.pending or waited < self.interval:
            return False
        return len(self.text) - self.shown >= self.batch or waited >= self.max_wait

    @property
    def batch(self) -> int:
        """Characters the next update should carry: few at first, then up to MAX_BATCH."""
        return min(MAX_BATCH, int(self.shown * GROWTH))

    @property
    def pending(self) -> bool:
        return len(self.text) > self.shown

    def flushed(self) -> str:
        """Mark everything as shown; return the whole text to display."""
        self._last = self._clock()
        self.shown = len(self.text)
        return self.text
