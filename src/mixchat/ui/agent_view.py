"""Agent steps as collapsible ``ChatStep`` cards: tool, input, output, duration, outcome.

Tool output (search results, for one) is untrusted text: it is shown in code blocks through
the safe Markdown renderer, and card titles are HTML-escaped.
"""

from __future__ import annotations

import html
import time
from typing import Any

import panel as pn

from mixchat.agent import Agent
from mixchat.agent.events import (
    AgentEvent,
    AgentFinished,
    AnswerDelta,
    StepError,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from mixchat.backends import Backend, CancelToken
from mixchat.config import Settings
from mixchat.tools import Tool
from mixchat.ui.render import code_block, markdown_pane
from mixchat.ui.reply import Outcome, ReplyView
from mixchat.ui.stats import error_advice
from mixchat.ui.throttle import Throttle


def _step_card(step: int) -> pn.chat.ChatStep:
    return pn.chat.ChatStep(
        title=f"Step {step}: thinking…",
        status="running",
        collapsed_on_success=True,
        sizing_mode="stretch_width",
        css_classes=["mixchat-step"],
    )


def _set_title(card: pn.chat.ChatStep, status: str, title: str) -> None:
    """Titles go into an HTML pane: escape them (tool names come from the model)."""
    card.param.update(**{f"{status}_title": html.escape(title)})
    card.status = status  # type: ignore[assignment]


class AgentStepsView:
    """The cards of one reply; also the list of step dicts the store keeps."""

    def __init__(self) -> None:
        self.layout = pn.Column(sizing_mode="stretch_width", margin=0)
        self.records: list[dict[str, Any]] = []
        self._cards: dict[int, pn.chat.ChatStep] = {}

    def handle(self, event: AgentEvent) -> None:
        if isinstance(event, StepStarted):
            self.records.append({"step": event.step})
            card = self._cards[event.step] = _step_card(event.step)
            self.layout.append(card)
        elif isinstance(event, ToolCalled):
            record = self._record(event.step)
            record.update(tool=event.tool, input=event.input)
            card = self._card(event.step)
            _set_title(card, "running", f"Step {event.step}: {event.tool}…")
            card.append(markdown_pane(f"**Input**\n\n{code_block(event.input)}"))
        elif isinstance(event, ToolResult):
            record = self._record(event.step)
            record.update(
                tool=event.tool, output=event.output, ok=event.ok, duration=round(event.duration, 3)
            )
            card = self._card(event.step)
            card.append(markdown_pane(f"**Output**\n\n{code_block(event.output)}"))
            outcome = "success" if event.ok else "failed"
            _set_title(
                card,
                outcome,
                f"Step {event.step}: {event.tool} "
                f"({'ok' if event.ok else 'failed'}, {event.duration:.2f} s)",
            )
        elif isinstance(event, StepError):
            record = self._record(event.step)
            record.update(error=event.message, raw=event.raw, ok=False)
            card = self._card(event.step)
            card.append(markdown_pane(f"**Problem:** {event.message}\n\n{code_block(event.raw)}"))
            _set_title(card, "failed", f"Step {event.step}: not a valid tool call")

    def finish(self) -> None:
        """Steps still running when the run ended (the final answer step) are done."""
        for step, card in list(self._cards.items()):
            if card.status == "running":
                if "tool" in self._record(step) or "error" in self._record(step):
                    _set_title(card, "failed", f"Step {step}: interrupted")
                else:  # the step that produced the final answer: no card needed
                    self.layout.remove(card)
                    del self._cards[step]
                    self.records = [r for r in self.records if r["step"] != step]
        for card in self._cards.values():  # the answer matters most now; cards open on click
            card.collapsed = True

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> AgentStepsView:
        """Rebuild the cards of a stored reply."""
        view = cls()
        for record in records:
            step = int(record.get("step", len(view.records) + 1))
            view.handle(StepStarted(step))
            if "tool" in record:
                view.handle(ToolCalled(step, record["tool"], record.get("input", "")))
            if "output" in record:
                view.handle(
                    ToolResult(
                        step,
                        record["tool"],
                        record["output"],
                        bool(record.get("ok")),
                        float(record.get("duration", 0)),
                    )
                )
            if "error" in record:
                view.handle(StepError(step, record["error"], record.get("raw", "")))
        view.finish()
        return view

    def _card(self, step: int) -> pn.chat.ChatStep:
        if step not in self._cards:
            self.handle(StepStarted(step))
        return self._cards[step]

    def _record(self, step: int) -> dict[str, Any]:
        for record in self.records:
            if record["step"] == step:
                return record
        self._card(step)
        return self.records[-1]


async def run_agent(
    backend: Backend,
    settings: Settings,
    tools: list[Tool],
    messages: list[dict[str, str]],
    view: ReplyView,
    cancel: CancelToken,
) -> Outcome:
    """Run the agent on the last user message; steps become cards, the answer streams."""
    steps = AgentStepsView()
    view.steps.objects = [steps.layout]
    agent = Agent(backend, tools=tools, max_steps=settings.agent_max_steps)
    throttle = Throttle()
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    finished: AgentFinished | None = None
    async for event in agent.run(messages[-1]["content"], history=messages[:-1], cancel=cancel):
        if isinstance(event, AnswerDelta):
            first = first if first is not None else time.perf_counter() - start
            chunks += 1
            if throttle.push(event.text):
                view.show(throttle.flushed())
        elif isinstance(event, AgentFinished):
            finished = event
        else:
            view.set_status("Working…")
            steps.handle(event)
    steps.finish()
    text = throttle.text or (finished.answer if finished else "")
    view.show(text)
    reason = finished.reason if finished else "error"
    finish = {"answer": "stop", "step_limit": "length", "cancelled": "cancelled"}.get(
        reason, "error"
    )
    stats = {
        "finish_reason": finish,
        "completion_tokens": chunks,
        "duration": time.perf_counter() - start,
        "agent_steps": finished.steps if finished else 0,
    }
    if first is not None:
        stats["time_to_first_token"] = first
    status = {"cancelled": "stopped", "error": "error"}.get(finish, "complete")
    error = None
    if finish == "error":
        error = error_advice(finished.error if finished else None, None)
        stats["error"] = error
    elif reason == "step_limit":
        error = "The agent reached its step limit before a final answer."
    return Outcome(text, status, stats, error, steps.records)
