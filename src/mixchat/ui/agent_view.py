"""Agent steps as collapsible ``ChatStep`` cards: tool, input, output, duration, outcome.

Tool output (search results, for one) is untrusted text: it is shown in code blocks through
the safe Markdown renderer, and card titles are HTML-escaped.
"""

from __future__ import annotations

import html
import time

import panel as pn

from mixchat.agent import Agent
from mixchat.agent.events import AgentEvent, AgentFinished, AnswerDelta
from mixchat.agent.steps import Step, StepLog
from mixchat.backends import Backend, CancelToken
from mixchat.backends.queue import ANONYMOUS
from mixchat.config import Settings
from mixchat.messages import Message
from mixchat.outcome import Outcome, Stats
from mixchat.tools import Tool, agent_tools
from mixchat.ui.render import code_block, markdown_pane
from mixchat.ui.reply import FinishedReply, ReplyView
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
    """The cards of one reply, one per :class:`Step`, redrawn as its events come."""

    def __init__(self) -> None:
        self.layout = pn.Column(sizing_mode="stretch_width", margin=0)
        self.log = StepLog()
        self._cards: dict[int, pn.chat.ChatStep] = {}

    @property
    def steps(self) -> list[Step]:
        return self.log.steps

    def handle(self, event: AgentEvent) -> None:
        step = self.log.apply(event)
        if step is not None:
            self._draw(step)

    def finish(self) -> None:
        """The run ended: a step cut short says so, the step that only answered goes."""
        for step in self.log.steps:
            if not step.finished and step.tool is not None:
                _set_title(self._card(step), "failed", f"Step {step.number}: interrupted")
        kept = {step.number for step in self.log.without_answer()}
        for number in [n for n in self._cards if n not in kept]:
            self.layout.remove(self._cards.pop(number))
        for card in self._cards.values():  # the answer matters most now; cards open on click
            card.collapsed = True

    @classmethod
    def from_steps(cls, steps: list[Step]) -> AgentStepsView:
        """The cards of a stored reply."""
        view = cls()
        view.log = StepLog(steps)
        for step in steps:
            view._draw(step)
        view.finish()
        return view

    def _card(self, step: Step) -> pn.chat.ChatStep:
        if step.number not in self._cards:
            self._cards[step.number] = card = _step_card(step.number)
            self.layout.append(card)
        return self._cards[step.number]

    def _draw(self, step: Step) -> None:
        """The card's title and contents for the step as it is now."""
        card = self._card(step)
        parts = []
        if step.input is not None:
            parts.append(markdown_pane(f"**Input**\n\n{code_block(step.input)}"))
        if step.output is not None:
            parts.append(markdown_pane(f"**Output**\n\n{code_block(step.output)}"))
        if step.error is not None:
            parts.append(
                markdown_pane(f"**Problem:** {step.error}\n\n{code_block(step.raw or '')}")
            )
        card.objects = parts
        if step.error is not None:
            _set_title(card, "failed", f"Step {step.number}: not a valid tool call")
        elif step.output is not None:
            result = "ok" if step.ok else "failed"
            _set_title(
                card,
                "success" if step.ok else "failed",
                f"Step {step.number}: {step.tool} ({result}, {step.duration or 0:.2f} s)",
            )
        elif step.tool is not None:
            _set_title(card, "running", f"Step {step.number}: {step.tool}…")


def make_agent(
    backend: Backend, settings: Settings, tools: list[Tool], user: str = ANONYMOUS
) -> Agent:
    return Agent(backend, tools=tools, max_steps=settings.agent_max_steps, user=user)


async def agent_system_message(backend: Backend, settings: Settings, tools: list[Tool]) -> str:
    """The system message the agent will send (MCP tools too), so the chat fits what is sent."""
    tools = await agent_tools(settings, tools)
    return make_agent(backend, settings, tools).system_message(settings.system_prompt)


async def run_agent(
    backend: Backend,
    settings: Settings,
    tools: list[Tool],
    messages: list[Message],
    view: ReplyView,
    cancel: CancelToken,
    user: str = ANONYMOUS,
) -> FinishedReply:
    """Run the agent on the last user message; steps become cards, the answer streams."""
    steps = AgentStepsView()
    view.steps.objects = [steps.layout]
    tools = await agent_tools(settings, tools)  # with the MCP servers' tools
    agent = make_agent(backend, settings, tools, user)
    throttle = Throttle()
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    finished: AgentFinished | None = None
    async for event in agent.run(
        messages[-1]["content"],
        history=messages[:-1],
        cancel=cancel,
        system_prompt=settings.system_prompt,
    ):
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
    outcome = finished.outcome if finished else Outcome.ERROR
    error = None
    if outcome is Outcome.ERROR:
        error = error_advice(finished.exception, finished.error) if finished else error_advice(None)
    stats = Stats(
        outcome,
        completion_tokens=chunks,
        time_to_first_token=first,
        duration=time.perf_counter() - start,
        agent_steps=finished.steps if finished else 0,
        error=error,
    )
    return FinishedReply(text, stats, steps.steps)
