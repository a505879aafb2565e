"""Agent steps as collapsible parts of the reply: tool, input, output, duration, outcome.

Tool output (search results, for one) is untrusted text: the transcript shows step texts as
plain text (``textContent``), never as HTML.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from mixchat.agent import Agent
from mixchat.agent.events import AgentEvent, AgentFinished, AnswerDelta
from mixchat.agent.steps import Step, StepLog
from mixchat.backends import Backend, CancelToken
from mixchat.backends.queue import ANONYMOUS
from mixchat.config import Settings
from mixchat.messages import Message
from mixchat.outcome import Outcome, Stats
from mixchat.tools import Tool, agent_tools
from mixchat.ui.reply import FinishedReply, LiveReply
from mixchat.ui.stats import error_advice
from mixchat.ui.transcript import StepView


def step_view(step: Step, *, done: bool = False) -> StepView:
    """How one :class:`Step` shows: its title says where it stands."""
    n = step.number
    view = StepView(
        n,
        f"Step {n}: thinking…",
        input=step.input or "",
        output=step.output or "",
        error=step.error or "",
        raw=step.raw or "",
        collapsed=done,
    )
    if step.error is not None:
        view.title, view.state = f"Step {n}: not a valid tool call", "failed"
    elif step.output is not None:
        result = "ok" if step.ok else "failed"
        view.title = f"Step {n}: {step.tool} ({result}, {step.duration or 0:.2f} s)"
        view.state = "success" if step.ok else "failed"
    elif step.tool is not None:
        view.title = f"Step {n}: interrupted" if done else f"Step {n}: {step.tool}…"
        view.state = "failed" if done else "running"
    return view


def step_views(steps: list[Step]) -> list[StepView]:
    """The steps of a stored reply, as they show once it ended."""
    return [step_view(step, done=True) for step in steps]


class AgentSteps:
    """The steps of one reply, drawn in it as their events come."""

    def __init__(self, reply: LiveReply) -> None:
        self.reply = reply
        self.log = StepLog()

    @property
    def steps(self) -> list[Step]:
        return self.log.steps

    def handle(self, event: AgentEvent) -> None:
        step = self.log.apply(event)
        if step is not None:
            self.reply.step(step_view(step))

    def finish(self) -> None:
        """The run ended: a step cut short says so, the step that only answered goes."""
        shown = {step.number for step in self.log.steps}
        kept = self.log.without_answer()
        for number in shown - {step.number for step in kept}:
            self.reply.step(StepView(number, "", gone=True))
        for step in kept:  # the answer matters most now; steps open on click
            self.reply.step(step_view(step, done=True))


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
    reply: LiveReply,
    cancel: CancelToken,
    user: str = ANONYMOUS,
    dropped: Sequence[Message] = (),
) -> FinishedReply:
    """Run the agent on the last user message; steps show in the reply, the answer streams.

    After the run, the reply keeps the prompt record of the agent's last model call (what
    "Inspect prompt" shows), and its stats the model's load time if the first call loaded it.
    """
    steps = AgentSteps(reply)
    tools = await agent_tools(settings, tools)  # with the MCP servers' tools
    agent = make_agent(backend, settings, tools, user)
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    text = ""
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
            text += event.text
            reply.write(event.text)
        elif isinstance(event, AgentFinished):
            finished = event
        else:
            reply.status("Working…")
            steps.handle(event)
    steps.finish()
    text = text or (finished.answer if finished else "")
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
        load_time=next(
            (c.done.load_time for c in agent.calls if c.done and c.done.load_time), None
        ),
    )
    # recorded after the run, as a chat reply's is: not before its first token
    if (record := await asyncio.to_thread(agent.record_prompt, dropped)) is not None:
        reply.prompt = record.to_dict()
    return FinishedReply(text, stats, steps.steps)
