"""The agent's steps and streamed answer in the terminal (``mixchat ask --agent``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TextIO

from rich.console import Console
from rich.text import Text

from mixchat.agent.events import (
    AgentEvent,
    AgentFinished,
    AnswerDelta,
    StepError,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from mixchat.outcome import Outcome

MAX_SHOWN = 400  # characters of a tool's input or output shown per line

_ENDINGS = {
    Outcome.STEP_LIMIT: "(the step limit was reached: answered without more tools)",
    Outcome.CANCELLED: "(stopped)",
}


async def print_agent_events(
    events: AsyncIterator[AgentEvent], console: Console, answer_out: TextIO | None = None
) -> AgentFinished:
    """Print each step as it happens and stream the answer; return the final event.

    Steps go to ``console``; the answer to ``answer_out`` if given (e.g. stdout while steps go
    to stderr), else to ``console`` too. An error is not printed: the caller reports
    ``finished.error`` its own way.
    """
    answering = False
    async for event in events:
        if isinstance(event, AnswerDelta):
            if not answering:
                answering = True
                console.print(Text("Answer:", style="bold green"))
            _write(console, answer_out, event.text)
        elif isinstance(event, AgentFinished):
            if answering:
                _write(console, answer_out, "\n")
            elif event.answer and event.outcome is not Outcome.ERROR:  # nothing was streamed
                console.print(Text("Answer:", style="bold green"))
                _write(console, answer_out, event.answer + "\n")
            if event.outcome in _ENDINGS:
                console.print(Text(_ENDINGS[event.outcome], style="dim"))
            return event
        else:
            console.print(step_line(event))
    raise RuntimeError("the agent stopped without a final event")


def step_line(event: AgentEvent) -> Text:
    """One line for a step event."""
    if isinstance(event, StepStarted):
        return Text(f"Step {event.step}", style="bold cyan")
    if isinstance(event, ToolCalled):
        return Text.assemble("  → ", (event.tool, "bold"), ": ", _short(event.input))
    if isinstance(event, ToolResult):
        style = "" if event.ok else "red"
        return Text.assemble(
            "  ← ", (_short(event.output), style), (f"  ({event.duration:.2f} s)", "dim")
        )
    if isinstance(event, StepError):
        return Text.assemble(
            ("  ! not a valid tool call: ", "yellow"),
            event.message,
            ("\n    " + _short(event.raw), "dim"),
        )
    return Text(repr(event), style="dim")


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_SHOWN else flat[:MAX_SHOWN] + "…"


def _write(console: Console, out: TextIO | None, text: str) -> None:
    if out is not None:
        out.write(text)
        out.flush()
    else:
        console.out(text, end="", highlight=False)
