"""What the agent loop yields; the web app, the CLI and Python callers render these.

A run yields, per step, ``StepStarted`` then either ``ToolCalled`` + ``ToolResult`` (the tool's
output goes back to the model), a ``StepError`` (a reply that was not a valid tool call, fed
back so the model can correct it), or ``AnswerDelta`` events (the final answer, streamed). The
last event is always one ``AgentFinished``. :class:`~mixchat.agent.steps.StepLog` folds the
step events into :class:`~mixchat.agent.steps.Step` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mixchat.outcome import Outcome


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
    """The end of a run: the answer, the steps it took, and how it ended.

    ``outcome`` is ``STOP`` (answered), ``STEP_LIMIT`` (answered at the step limit, without
    more tools), ``CANCELLED`` or ``ERROR``; a failed run keeps its ``exception``.
    """

    answer: str
    steps: int
    outcome: Outcome
    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


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
