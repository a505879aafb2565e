"""When to send a streamed reply's text: by time, about 20 updates per reply.

Every update is one websocket message with ~250 bytes of framing and ~0.8 ms of server CPU,
whatever text it carries. The first text goes at once (the reader waits for it); after that
the wait between updates grows with the reply's age (``GROWTH`` of the time since its first
text, from ``MIN_INTERVAL`` up to ``MAX_INTERVAL``), so a one-second echo reply takes ~6
updates and a 30-second model reply ~20, not one per token. Pure logic with an injectable
clock, for the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The shortest wait between two updates.
MIN_INTERVAL = 0.15
#: The wait grows to this share of the time since the reply's first text...
GROWTH = 0.5
#: ...but never beyond this many seconds.
MAX_INTERVAL = 2.0


class Batcher:
    """Collects a reply's text; says when the pending part is due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: float | None = None  # when the first text was sent
        self._next = -float("inf")  # when the next update may go
        self.pending = ""

    def add(self, text: str) -> None:
        self.pending += text

    def wait(self) -> float:
        """Seconds until the pending text should be sent (0 or less: now)."""
        if not self.pending:
            return float("inf")
        return self._next - self._clock()

    def take(self) -> str:
        """The pending text, marked as sent; the next update waits longer."""
        now = self._clock()
        if self._first is None:
            self._first = now
        interval = min(MAX_INTERVAL, max(MIN_INTERVAL, GROWTH * (now - self._first)))
        self._next = now + interval
        text, self.pending = self.pending, ""
        return text
