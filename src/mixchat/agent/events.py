"""What the agent loop yields; the web app, the CLI and Python callers render these.

A run yields, per step, ``StepStarted`` then either ``ToolCalled`` + ``ToolResult`` (the tool's
output goes back to the model), a ``StepError`` (a reply that was not a valid tool call, fed
back so the model can correct it), or ``AnswerDelta`` events (the final answer, streamed). The
last event is always one ``AgentFinished``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepStarted:
    step: int  # 1-based


@dataclass(frozen=True)
class ToolCalled:
    step: int
    tool: str
    input: str


@dataclass(frozen=True)
class ToolResult:
    step: int
    tool: str
    output: str
    ok: bool  # False when the tool failed (its output begins with "Error")
    duration: float  # seconds


@dataclass(frozen=True)
class StepError:
    """The model's reply was not a valid tool call (malformed JSON, unknown tool)."""

    step: int
    message: str
    raw: str


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class AgentFinished:
    answer: str
    steps: int
    reason: str  # "answer" | "step_limit" | "cancelled" | "error"
    error: str | None = None


AgentEvent = StepStarted | ToolCalled | ToolResult | StepError | AnswerDelta | AgentFinished

__all__ = [
    "AgentEvent",
    "AgentFinished",
    "AnswerDelta",
    "StepError",
    "StepStarted",
    "ToolCalled",
    "ToolResult",
]
