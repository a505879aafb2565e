"""The agent loop: ask the model for a tool call, run the tool, feed its output back, repeat.

One async generator yields typed events (:mod:`mixchat.agent.events`); the faces render them.
A reply that is not a valid tool call is fed back as an error the model can correct; at the
step limit a last call allows only a final answer. The strategy follows the backend:

* ``JSON_SCHEMA`` / ``JSON_MODE``: ``ChatRequest.json_schema`` makes each reply a valid call;
* otherwise the walkthrough's primer (``assistant_prefix``) and tolerant extraction;
* ``Agent(native_tools=True)`` on a ``TOOL_CALLING`` backend: native tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from mixchat.agent import calls, protocol
from mixchat.agent.events import (
    AgentEvent,
    AgentFinished,
    AnswerDelta,
    StepError,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from mixchat.agent.memory import Memory, clean_history
from mixchat.agent.steps import Step
from mixchat.backends import (
    Backend,
    CancelToken,
    Capability,
    ChatRequest,
    Done,
    TextDelta,
    ToolCall,
)
from mixchat.backends.queue import ANONYMOUS
from mixchat.config import AGENT_SAMPLING, SamplingParams
from mixchat.errors import ConfigError
from mixchat.messages import Message
from mixchat.outcome import Outcome
from mixchat.prompt.inspector import PromptRecord, record_prompt
from mixchat.tools.base import FINAL_ANSWER, Tool, ToolInput, normalize_name

#: What the loop and its helpers yield (closed with ``aclosing`` when the reader stops).
Events = AsyncGenerator[AgentEvent, None]

_STRUCTURED = frozenset({Capability.JSON_SCHEMA, Capability.JSON_MODE})


@dataclass
class _Turn:
    """One model call, as it streams: the text, native tool calls, the final summary."""

    primer: str = ""
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    done: Done | None = None
    answer: protocol.AnswerStream = field(default_factory=protocol.AnswerStream)

    @property
    def reply(self) -> str:
        return self.primer + self.text


@dataclass
class ModelCall:
    """One model call of a run: what was sent, and how it ended (``done``: None until then).

    The faces read them after a run: the last call's request is what the prompt inspector
    shows, the first call's ``Done.load_time`` says how long the model took to load.
    """

    request: ChatRequest
    done: Done | None = None


class Agent:
    """Answers a query by calling tools through the walkthrough's JSON protocol.

    agent = Agent(get_backend(load_settings()))
    async for event in agent.run("What is the square root of 512 multiplied by 7?"):
        ...
    """

    def __init__(
        self,
        backend: Backend,
        tools: Sequence[Tool] | None = None,
        max_steps: int = 6,
        params: SamplingParams = AGENT_SAMPLING,
        native_tools: bool = False,
        user: str = ANONYMOUS,
    ) -> None:
        if tools is None:
            from mixchat.tools import registered_tools

            tools = registered_tools()
        if max_steps < 1:
            raise ConfigError(f"invalid max_steps={max_steps}: the agent needs at least 1 step")
        if native_tools and Capability.TOOL_CALLING not in backend.capabilities:
            raise ConfigError(f"the {backend.name} backend does not support native tool calling")
        self.backend = backend
        self.tools = {tool.name: tool for tool in tools}
        if len({normalize_name(name) for name in self.tools}) != len(tools):
            raise ConfigError("two tools have the same name")
        self.max_steps = max_steps
        self.params = params
        self.native_tools = native_tools
        self.user = user  # whose turn it is in the model's queue
        self.structured = not native_tools and bool(_STRUCTURED & backend.capabilities)
        #: The model calls of the latest run, in order.
        self.calls: list[ModelCall] = []

    @property
    def tool_names(self) -> list[str]:
        return list(self.tools)

    def system_message(self, system_prompt: str = "") -> str:
        """What the agent sends as its system message: the user's own system prompt first,
        then the tool instructions (so a chat's "answer in French" holds in agent mode too)."""
        tools = (
            protocol.native_system_message()
            if self.native_tools
            else protocol.system_message(list(self.tools.values()))
        )
        return f"{system_prompt.strip()}\n\n{tools}" if system_prompt.strip() else tools

    def record_prompt(self, dropped: Sequence[Message] = ()) -> PromptRecord | None:
        """What the model received for the latest run's last call (the one that answered),
        for the prompt inspector; None before a run. Blocking (it tokenizes): run it in a
        worker thread."""
        if not self.calls:
            return None
        last = self.calls[-1].request
        return record_prompt(self.backend, last, dropped, agent_calls=len(self.calls))

    @property
    def _objects(self) -> bool:
        """Some tools take a JSON object (their schema) rather than one string."""
        return any(tool.parameters is not None for tool in self.tools.values())

    def _correction(self, error: protocol.ProtocolError) -> str:
        return protocol.correction(error, self.tool_names, self._objects)

    async def run(
        self,
        query: str,
        history: Sequence[Message] | None = None,
        cancel: CancelToken | None = None,
        system_prompt: str = "",
    ) -> Events:
        """Events of one answer; always ends with exactly one :class:`AgentFinished`.

        ``history`` holds the earlier turns (a system message in it is left out: the user's
        system prompt is ``system_prompt``, sent before the tool instructions).
        """
        cancel = cancel or CancelToken()
        self.calls = []
        system = self.system_message(system_prompt)
        memory = Memory(system=system, query=query, history=clean_history(history))
        for step in range(1, self.max_steps + 1):
            yield StepStarted(step)
            async with contextlib.aclosing(self._step(memory, step, cancel)) as events:
                async for event in events:
                    yield event
                    if isinstance(event, AgentFinished):
                        return
        async with contextlib.aclosing(self._last_call(memory, cancel)) as events:
            async for event in events:
                yield event

    # -- one step ----------------------------------------------------------------------------

    async def _step(self, memory: Memory, step: int, cancel: CancelToken) -> Events:
        turn = _Turn()
        request = self._request(memory, cancel, turn)
        async with contextlib.aclosing(self._generate(request, turn)) as events:
            async for event in events:
                yield event
        if (stop := self._stopped(turn, step, cancel)) is not None:
            yield stop
            return
        if self.native_tools:
            async with contextlib.aclosing(self._native_step(memory, step, turn, cancel)) as events:
                async for event in events:
                    yield event
            return
        try:
            action = protocol.parse_action(turn.text, self.tool_names, turn.primer)
            # a call's input must follow its tool's schema (a Final Answer's is text)
            tool_input = (
                action.input
                if action.is_final
                else calls.checked_input(self.tools[action.tool_name], action.input)
            )
        except protocol.ProtocolError as error:
            if turn.answer.text:  # a final answer already streamed, then cut: keep it
                yield AgentFinished(turn.answer.text, step, Outcome.STOP)
                return
            yield StepError(step, str(error), turn.reply)
            memory.add(
                Step(
                    step,
                    error=str(error),
                    raw=turn.reply,
                    ok=False,
                    reply=protocol.recorded_reply(turn.reply),
                    feedback=self._correction(error),
                )
            )
            return
        if action.is_final:
            answer = calls.shown_input(action.input).strip()
            if rest := _unstreamed(turn, answer):
                yield AnswerDelta(rest)
            yield AgentFinished(answer, step, Outcome.STOP)
            return
        recorded = protocol.recorded_reply(turn.reply)
        async with contextlib.aclosing(
            self._use_tool(step, action.tool_name, tool_input, cancel, memory, recorded)
        ) as events:
            async for event in events:
                yield event

    async def _native_step(
        self, memory: Memory, step: int, turn: _Turn, cancel: CancelToken
    ) -> Events:
        if not turn.calls:
            yield AgentFinished(turn.text.strip(), step, Outcome.STOP)
            return
        by_function = {protocol.function_name(name): name for name in self.tools}
        call = turn.calls[0]  # one call per step, like the JSON protocol
        name = by_function.get(call.name)
        tool = self.tools.get(name) if name else None
        value = _native_input(call, tool)
        recorded = json.dumps({"tool_name": name or call.name, "input": value})
        try:
            if tool is None:
                raise protocol.ProtocolError(f'there is no tool named "{call.name}".')
            tool_input = calls.checked_input(tool, value)
        except protocol.ProtocolError as error:
            yield StepError(step, str(error), recorded)
            memory.add(
                Step(
                    step,
                    error=str(error),
                    raw=recorded,
                    ok=False,
                    reply=recorded,
                    feedback=self._correction(error),
                )
            )
            return
        async with contextlib.aclosing(
            self._use_tool(step, tool.name, tool_input, cancel, memory, recorded)
        ) as events:
            async for event in events:
                yield event

    async def _use_tool(
        self,
        step: int,
        name: str,
        tool_input: ToolInput,
        cancel: CancelToken,
        memory: Memory,
        recorded: str,
    ) -> Events:
        shown = calls.shown_input(tool_input)
        yield ToolCalled(step, name, shown)
        started = time.perf_counter()
        output = await _run_tool(self.tools[name], tool_input, cancel)
        if output is None:
            yield AgentFinished("", step, Outcome.CANCELLED)
            return
        ok = not output.startswith("Error")
        duration = time.perf_counter() - started
        yield ToolResult(step, name, output, ok, duration)
        memory.add(
            Step(
                step,
                tool=name,
                input=shown,
                output=output,
                ok=ok,
                duration=duration,
                reply=recorded,
                feedback=protocol.observation(output),
            )
        )

    async def _last_call(self, memory: Memory, cancel: CancelToken) -> Events:
        """At the step limit: one more call that can only answer."""
        steps = self.max_steps
        turn = _Turn()
        request = self._request(memory, cancel, turn, final=True)
        async with contextlib.aclosing(self._generate(request, turn)) as events:
            async for event in events:
                yield event
        if (stop := self._stopped(turn, steps, cancel)) is not None:
            yield stop
            return
        if self.native_tools:
            answer = turn.text.strip()
        else:
            try:
                action = protocol.parse_action(turn.text, [], turn.primer)
                answer = calls.shown_input(action.input).strip()
            except protocol.ProtocolError:
                answer = turn.answer.text or turn.text.strip()
            if rest := _unstreamed(turn, answer):
                yield AnswerDelta(rest)
        yield AgentFinished(answer, steps, Outcome.STEP_LIMIT)

    # -- model calls -------------------------------------------------------------------------

    def _request(
        self, memory: Memory, cancel: CancelToken, turn: _Turn, final: bool = False
    ) -> ChatRequest:
        messages = memory.to_messages(protocol.STEP_LIMIT_NOTE if final else "")
        request = ChatRequest(messages=messages, params=self.params, cancel=cancel, user=self.user)
        if self.native_tools:
            request.tools = None if final else protocol.native_tool_specs(list(self.tools.values()))
        elif self.structured:
            request.json_schema = calls.call_schema([] if final else list(self.tools.values()))
        else:
            turn.primer = protocol.FINAL_PRIMER if final else protocol.PRIMER
            request.assistant_prefix = turn.primer
            request.params = self.params.model_copy(
                update={"stop": (*self.params.stop, "Tool Output:")}
            )
        return request

    async def _generate(self, request: ChatRequest, turn: _Turn) -> Events:
        """Stream one reply into ``turn``, yielding final-answer text as soon as it is readable."""
        call = ModelCall(request)
        self.calls.append(call)
        async with contextlib.aclosing(self.backend.stream(request)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    turn.text += event.text
                    if self.native_tools:
                        yield AnswerDelta(event.text)
                    elif delta := turn.answer.feed(turn.reply):
                        yield AnswerDelta(delta)
                elif isinstance(event, ToolCall):
                    turn.calls.append(event)
                elif isinstance(event, Done):
                    turn.done = call.done = event

    def _stopped(self, turn: _Turn, step: int, cancel: CancelToken) -> AgentFinished | None:
        """The end of the run if the call was cancelled or failed."""
        done = turn.done
        if cancel.is_set() or (done is not None and done.outcome is Outcome.CANCELLED):
            return AgentFinished(turn.answer.text, step, Outcome.CANCELLED)
        if done is None or done.outcome is Outcome.ERROR:
            error = (done.error if done else None) or "the model failed without a message"
            exception = done.exception if done else None
            return AgentFinished("", step, Outcome.ERROR, error=error, exception=exception)
        return None


def _unstreamed(turn: _Turn, answer: str) -> str:
    """The part of ``answer`` not streamed yet (all of it if nothing was)."""
    streamed = turn.answer.text
    return answer[len(streamed) :] if answer.startswith(streamed) else ""


async def _run_tool(tool: Tool, tool_input: ToolInput, cancel: CancelToken) -> str | None:
    """The tool's output (failures as ``Error...`` text), or None if cancelled meanwhile."""
    task = asyncio.ensure_future(tool.run(tool_input))
    stopped = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        return None
    if (error := task.exception()) is not None:
        return f"Error: {tool.name} failed: {type(error).__name__}: {error}"
    return task.result()


def _native_input(call: ToolCall, tool: Tool | None) -> ToolInput:
    """The input of a native call: its arguments object for a tool with parameters; else the
    ``input`` argument (or the whole arguments if they differ)."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        return call.arguments
    if isinstance(arguments, dict) and tool is not None and tool.parameters is not None:
        return arguments
    if isinstance(arguments, dict):
        if isinstance(arguments.get("input"), str):
            return arguments["input"]
        strings = [value for value in arguments.values() if isinstance(value, str)]
        if len(strings) == 1:
            return strings[0]
    return call.arguments


__all__ = ["FINAL_ANSWER", "Agent", "ModelCall"]
