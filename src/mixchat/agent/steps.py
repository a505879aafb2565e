"""One agent step, in one shape: what the agent's memory keeps, the store saves and faces draw.

A step is either a tool call (``tool``, ``input``, then ``output``, ``ok``, ``duration``) or a
reply that was not a valid tool call (``error``, and the ``raw`` reply). ``reply`` and
``feedback`` are the two turns the step adds to the agent's conversation with the model (its
recorded reply, and the tool output or correction it was told); :meth:`Step.to_messages`
gives them. :class:`StepLog` builds steps from a run's events as they come.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mixchat.agent.events import AgentEvent, StepError, StepStarted, ToolCalled, ToolResult
from mixchat.messages import Message


@dataclass
class Step:
    number: int  # 1-based
    tool: str | None = None
    input: str | None = None
    output: str | None = None
    ok: bool | None = None
    duration: float | None = None  # seconds the tool ran
    error: str | None = None  # why the reply was not a valid tool call
    raw: str | None = None  # that reply, as the model wrote it
    reply: str = field(default="", repr=False)
    feedback: str = field(default="", repr=False)

    @property
    def finished(self) -> bool:
        """The tool answered, or the reply was refused; False for a step cut short."""
        return self.output is not None or self.error is not None

    def to_messages(self) -> list[Message]:
        return [
            Message(role="assistant", content=self.reply),
            Message(role="user", content=self.feedback),
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any], number: int = 1) -> Step:
        """Read :meth:`to_dict` back (and what older versions stored: ``step`` for the number);
        keys it does not know and values of the wrong type are ignored."""
        values: dict[str, Any] = {"number": _int(data.get("number", data.get("step")), number)}
        for name in ("tool", "input", "output", "error", "raw", "reply", "feedback"):
            if isinstance(data.get(name), str):
                values[name] = data[name]
        if isinstance(data.get("ok"), bool):
            values["ok"] = data["ok"]
        if isinstance(data.get("duration"), int | float):
            values["duration"] = float(data["duration"])
        return cls(**values)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class StepLog:
    """The steps of one run, kept up to date from its events (what a face shows and saves)."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps = list(steps)

    def apply(self, event: AgentEvent) -> Step | None:
        """Fold ``event`` in; return the step it changed (None for events of no step)."""
        if isinstance(event, StepStarted):
            return self._step(event.step)
        if isinstance(event, ToolCalled):
            step = self._step(event.step)
            step.tool, step.input = event.tool, event.input
            return step
        if isinstance(event, ToolResult):
            step = self._step(event.step)
            step.tool, step.output, step.ok = event.tool, event.output, event.ok
            step.duration = round(event.duration, 3)
            return step
        if isinstance(event, StepError):
            step = self._step(event.step)
            step.error, step.raw, step.ok = event.message, event.raw, False
            return step
        return None

    def without_answer(self) -> list[Step]:
        """The steps worth keeping once the run ended: not the one that only gave the answer."""
        self.steps = [s for s in self.steps if s.tool is not None or s.error is not None]
        return self.steps

    def _step(self, number: int) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        step = Step(number)
        self.steps.append(step)
        return step


__all__ = ["Step", "StepLog"]
