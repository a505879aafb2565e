"""Cutting a streamed reply at stop strings, for backends whose library does not."""

from __future__ import annotations

from collections.abc import Sequence


class StopText:
    """Cuts the reply at the first stop string, holding back text that may begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of the reply so far that is safe to show."""
        if self.stopped:
            return ""
        self.pending += text
        found = [i for i in (self.pending.find(stop) for stop in self.stops) if i >= 0]
        if found:
            self.stopped = True
            shown, self.pending = self.pending[: min(found)], ""
            return shown
        keep = max(
            (
                k
                for stop in self.stops
                for k in range(1, len(stop))
                if self.pending.endswith(stop[:k])
            ),
            default=0,
        )
        split = len(self.pending) - keep
        shown, self.pending = self.pending[:split], self.pending[split:]
        return shown

    def flush(self) -> str:
        shown, self.pending = ("" if self.stopped else self.pending), ""
        return shown
