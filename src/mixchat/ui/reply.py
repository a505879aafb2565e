"""The reply being written: what the chat and the agent runner tell the transcript about it.

A :class:`LiveReply` is a handle on one assistant message of the :class:`Transcript`: its
status line while it waits (queued, loading, thinking), its text as it streams, its agent
steps, and at the end its outcome (stats line, stopped or error). It holds no widgets.

A reload makes a new session while the old one still writes the reply. So replies being
written are listed per process by conversation (:data:`WRITING`): a page that opens that
conversation shows the text so far and follows the reply to its end (:meth:`follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mixchat.agent.steps import Step
from mixchat.backends import CancelToken
from mixchat.outcome import Outcome, Stats, Status
from mixchat.store.progress import ReplyProgress
from mixchat.ui.stats import format_stats
from mixchat.ui.transcript import StepView, Transcript
from mixchat.ui.transcript.component import Shown

STEP_LIMIT_NOTE = "The agent reached its step limit before a final answer."


@dataclass
class FinishedReply:
    """A reply as it ended: its text, its stats (with how it ended), its agent steps."""

    text: str
    stats: Stats
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return self.stats.outcome.status


def ended(stats: Stats) -> tuple[Shown, str, str]:
    """How a reply's end shows: its status, its stats line, its error or note."""
    error = ""
    if stats.outcome is Outcome.ERROR:
        error = stats.error or "The model failed."
    elif stats.outcome is Outcome.STEP_LIMIT:
        error = STEP_LIMIT_NOTE
    return stats.outcome.status, format_stats(stats), error


class LiveReply:
    """One assistant message on screen while it is written (and its followers' copies)."""

    def __init__(self, transcript: Transcript, entry_id: int, cancel: CancelToken) -> None:
        self.screens: list[tuple[Transcript, int]] = [(transcript, entry_id)]
        self.cancel = cancel
        self.text = ""
        self.progress = ""
        self.notice_text = ""
        self.steps: dict[int, StepView] = {}
        self.finished: FinishedReply | None = None
        #: What the model received (a PromptRecord's dict), once recorded.
        self.prompt: dict[str, Any] | None = None
        #: The stored reply, saved every few seconds while it streams (history on).
        self.saver: ReplyProgress | None = None
        #: Set at the first text (or step, or the end): the store write of a reply in progress
        #: waits for it, so it does not compete with the model's prompt for the CPU.
        self.started = asyncio.Event()
        self._on_saved: list[Callable[[], None]] = []

    async def first_text(self, at_most: float) -> None:
        """Wait for the first text (or step, or the end), ``at_most`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.started.wait(), at_most)

    def status(self, text: str) -> None:
        """The line shown until the first text: queued, loading, thinking."""
        self.progress = text
        for transcript, entry in self.screens:
            transcript.set(entry, progress=text)

    def notice(self, text: str) -> None:
        self.notice_text = text
        for transcript, entry in self.screens:
            transcript.set(entry, notice=text)

    def write(self, text: str) -> None:
        """More text of the reply (the transcript batches it by time)."""
        self.text += text
        self.started.set()
        if self.saver is not None:
            self.saver.grow(text)
        for transcript, entry in self.screens:
            transcript.delta(entry, text)

    def step(self, step: StepView) -> None:
        self.steps[step.n] = step
        self.started.set()
        for transcript, entry in self.screens:
            transcript.step(entry, step)

    def finish(self, reply: FinishedReply) -> None:
        """The last text, then the stats line (and the error, the note or 'stopped')."""
        if reply.text.startswith(self.text) and len(reply.text) > len(self.text):
            self.write(reply.text[len(self.text) :])
        self.finished = reply
        self.started.set()
        status, footer, error = ended(reply.stats)
        for transcript, entry in self.screens:
            transcript.finish(entry, status, footer=footer, error=error)

    def follow(self, transcript: Transcript, name: str, on_saved: Callable[[], None]) -> None:
        """Show this reply in another page too, from its text so far; ``on_saved`` at the end."""
        entry = transcript.append(
            "assistant",
            self.text,
            name=name,
            status="streaming",
            progress=self.progress,
            notice=self.notice_text,
            steps=[step for step in self.steps.values() if not step.gone],
        )
        self.screens.append((transcript, entry))
        self._on_saved.append(on_saved)

    def saved(self) -> None:
        """The reply is in the store: followers reopen the conversation from there."""
        for callback in self._on_saved:
            callback()


#: Replies being written in this process, by conversation id.
WRITING: dict[str, LiveReply] = {}
