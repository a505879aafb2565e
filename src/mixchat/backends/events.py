"""What a backend's stream yields: text as it comes, queue updates, and one final summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixchat.outcome import Outcome, Stats


@dataclass(frozen=True)
class TextDelta:
    """New text of the reply."""

    text: str


@dataclass(frozen=True)
class Queued:
    """The request waits behind others for a model that serves one at a time.

    ``position`` counts requests ahead of this one (1: next in line).
    """

    position: int


@dataclass(frozen=True)
class Usage:
    """Token counts a backend reports; the base class adds timing to make a :class:`Done`.

    ``outcome`` is ``STOP`` or ``LENGTH`` (None: ``STOP``); cancellation and errors are the
    base class's to say.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Done(Stats):
    """The last event of every stream: its :class:`Stats`, and for a failed reply the
    exception itself (a :class:`~mixchat.errors.MixchatError` where the backend mapped it), so
    callers can pick what to do by its type."""

    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def error_type(self) -> str | None:
        """The exception's class name (for logs and tests)."""
        return None if self.exception is None else type(self.exception).__name__

    def raise_for_error(self) -> None:
        """Raise the reply's exception, if it failed."""
        if self.exception is not None:
            raise self.exception


Event = TextDelta | Queued | Done
