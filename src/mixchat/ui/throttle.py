"""Batch streamed text so the browser gets at most one update per interval.

Each update is a websocket message with ~250 bytes of framing on top of the appended text
(Panel's streaming Markdown sends only the new part); sending one per token would multiply
the bytes of a long reply. Pure logic with an injectable clock, for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds between two updates of a streaming reply, at its start...
UPDATE_INTERVAL = 0.05
#: ...growing with its length up to this, so a long reply costs few messages of framing.
MAX_INTERVAL = 0.25
#: Characters of reply that add one second to the interval.
CHARS_PER_SECOND_OF_INTERVAL = 5_000


class Throttle:
    """Collects text; :meth:`push` says when the pending text should be flushed."""

    def __init__(self, interval: float = UPDATE_INTERVAL, max_interval: float = MAX_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = interval
        self.max_interval = max(interval, max_interval)
        self._clock = clock
        self._last = -float("inf")
        self.text = ""  # all text so far
        self.shown = 0  # characters already flushed

    def push(self, delta: str) -> bool:
        """Add ``delta``; True when it is time to show the text (then call :meth:`flushed`)."""
        self.text += delta
        return self.pending and self._clock() - self._last >= self.interval

    @property
    def interval(self) -> float:
        """50 ms for a short reply (smooth), slower as it grows (the reader is reading)."""
        grown = self.min_interval + self.shown / CHARS_PER_SECOND_OF_INTERVAL
        return min(self.max_interval, grown)
    @property
    def pending(self) -> bool:
        return len(self.text) > self.shown

    def flushed(self) -> str:
        """Mark everything as shown; return the whole text to display."""
        self._last = self._clock()
        self.shown = len(self.text)
        return self.text
