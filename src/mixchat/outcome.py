"""How a reply ended and what it cost: one vocabulary for every layer.

A backend's stream ends with a :class:`~mixchat.backends.Done` (a :class:`Stats` that also
keeps the exception of a failed reply), the agent's run with an ``AgentFinished`` whose
``outcome`` is an :class:`Outcome`, the store keeps :meth:`Stats.to_dict` and a message's
:data:`Status`, and the web app and the CLI read all of it from here. Nothing translates
one word into another on the way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

#: Whether a stored message is whole, was stopped, or failed (a user message is "complete");
#: "streaming" while a reply is being written, "interrupted" when the process writing it
#: died (its text is what had been saved, and it can be regenerated).
Status = Literal["complete", "stopped", "error", "streaming", "interrupted"]
#: The statuses a reply can end with (what :attr:`Outcome.status` gives).
EndStatus = Literal["complete", "stopped", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)


class Outcome(str, enum.Enum):
    """How a reply ended. A ``str`` enum: ``Outcome.STOP == "stop"``, and JSON keeps the value."""

    STOP = "stop"  # the model finished its reply (the agent: it gave its final answer)
    LENGTH = "length"  # cut at max_tokens
    STEP_LIMIT = "step_limit"  # the agent used all its steps and answered without more tools
    CANCELLED = "cancelled"  # stopped by the user (the stop button, Ctrl+C, a closed page)
    ERROR = "error"  # failed; the stream's Done (or AgentFinished) keeps the exception

    @property
    def ok(self) -> bool:
        """The reply is usable as it is (complete, or cut at a limit)."""
        return self in (Outcome.STOP, Outcome.LENGTH, Outcome.STEP_LIMIT)

    @property
    def status(self) -> EndStatus:
        """The stored message's status for a reply that ended this way."""
        if self is Outcome.CANCELLED:
            return "stopped"
        if self is Outcome.ERROR:
            return "error"
        return "complete"

    @classmethod
    def from_status(cls, status: str) -> Outcome:
        """The outcome a stored message's status stands for, where nothing more is known."""
        return {"stopped": cls.CANCELLED, "error": cls.ERROR, "interrupted": cls.ERROR}.get(
            status, cls.STOP
        )

    def __str__(self) -> str:  # "stop", not "Outcome.STOP", in messages and f-strings
        return self.value


@dataclass(frozen=True)
class Stats:
    """A reply's numbers and how it ended: the footer under a reply, and what the store keeps.

    Times are seconds from the request: ``time_to_first_token`` to the first text,
    ``duration`` to the end; ``tokens_per_second`` is the decode speed after the first token.
    ``error`` is the one line shown for a failed reply.
    """

    outcome: Outcome
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    time_to_first_token: float | None = None
    duration: float = 0.0
    tokens_per_second: float | None = None
    error: str | None = None
    agent_steps: int | None = None
    #: Seconds the model took to load before this reply (the first reply of a local model).
    load_time: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.outcome, Outcome):  # Stats("stop", ...) is allowed
            object.__setattr__(self, "outcome", Outcome(self.outcome))

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (fields that are None are left out)."""
        data = {f.name: getattr(self, f.name) for f in fields(Stats)}
        data["outcome"] = self.outcome.value
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], default: Outcome = Outcome.STOP) -> Stats:
        """Read :meth:`to_dict` back; also what older versions stored (``finish_reason``),
        ignoring keys it does not know and values of the wrong type."""
        outcome = data.get("outcome", data.get("finish_reason"))
        values: dict[str, Any] = {"outcome": _outcome(outcome, default)}
        for name, kind in _NUMBERS.items():
            value = data.get(name)
            if isinstance(value, kind) and not isinstance(value, bool):
                values[name] = value
        if isinstance(data.get("error"), str):
            values["error"] = data["error"]
        return cls(**values)


_NUMBERS: dict[str, type | tuple[type, ...]] = {
    "prompt_tokens": int,
    "completion_tokens": int,
    "time_to_first_token": (int, float),
    "duration": (int, float),
    "tokens_per_second": (int, float),
    "agent_steps": int,
    "load_time": (int, float),
}


def plural(count: int, word: str) -> str:
    """``1 token``, ``2 tokens``: counts in the footers and the CLI."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _outcome(value: Any, default: Outcome) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        return default


__all__ = ["STATUSES", "Outcome", "Stats", "Status"]
