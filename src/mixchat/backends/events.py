"""What a backend's stream yields: text as it comes, queue updates, and one final summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]


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
    """Token counts a backend reports; the base class adds timing to make a :class:`Done`."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: FinishReason | None = None


@dataclass(frozen=True)
class Done:
    """The last event of every stream: why it ended, how long it took, and how much."""

    finish_reason: FinishReason
    prompt_tokens: int | None
    completion_tokens: int
    time_to_first_token: float | None  # seconds from the request to the first text
    duration: float  # seconds from the request to the end
    tokens_per_second: float | None  # completion tokens over the generation time
    error: str | None = None  # one line for the user when finish_reason is "error"
    error_type: str | None = None  # the MixchatError class name

    @property
    def ok(self) -> bool:
        return self.finish_reason in ("stop", "length")


Event = TextDelta | Queued | Done
