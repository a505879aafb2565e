"""The agent loop driven through every branch by a scripted backend, the protocol's tolerant
parsing, user tools, the terminal view, and one run on the embedded model with its grammar."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rich.console import Console

import mixchat
from mixchat.agent import (
    Agent,
    AgentEvent,
    AgentFinished,
    AnswerDelta,
    StepError,
    StepStarted,
    ToolCalled,
    ToolResult,
    parse_action,
)
from mixchat.agent.protocol import (
    FINAL_PRIMER,
    PRIMER,
    AnswerStream,
    ProtocolError,
    action_schema,
    recorded_reply,
    system_message,
)
from mixchat.backends import CancelToken, Capability, ToolCall
from mixchat.errors import ConfigError, Unreachable
from mixchat.outcome import Outcome
from mixchat.tools import (
    SearchResult,
    Tool,
    calculator_tool,
    registered_tools,
    search_tool,
    tool,
    unregister_tool,
)
from scripted_backend import ScriptedBackend

QUESTION = "What is the square root of 512 multiplied by 7?"


class LocalSearch:
    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        return [
            SearchResult(
                "Eiffel Tower", "https://example.org/eiffel", "The Eiffel Tower is 330 metres tall."
            )
        ]


def tools() -> list[Tool]:
    return [calculator_tool(), search_tool(LocalSearch())]


def call(name: str, text: str, primed: bool = True) -> str:
    """A reply as a primed raw-prompt model writes it (continuing ``"tool_name": ``)."""
    body = f'"{name}",\n"input": {json.dumps(text)}\n}}\n```'
    return f" {body}" if primed else '```json\n{\n"tool_name": ' + body


async def collect(events: AsyncIterator[AgentEvent]) -> list[AgentEvent]:
    return [event async for event in events]


def finished(events: list[AgentEvent]) -> AgentFinished:
    assert sum(isinstance(e, AgentFinished) for e in events) == 1
    assert isinstance(events[-1], AgentFinished)
    return events[-1]


def answer_text(events: list[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, AnswerDelta))


def kinds(events: list[AgentEvent]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, AnswerDelta)]


# -- the loop, branch by branch ----------------------------------------------------------------


async def test_direct_answer_streams_the_final_answer() -> None:
    backend = ScriptedBackend([call("Final Answer", "Hello! How can I help?")], chunk=3)
    events = await collect(Agent(backend, tools()).run("Hi there"))
    assert kinds(events) == ["StepStarted", "AgentFinished"]
    assert len([e for e in events if isinstance(e, AnswerDelta)]) > 2  # streamed, not at once
    assert answer_text(events) == "Hello! How can I help?"
    assert finished(events) == AgentFinished("Hello! How can I help?", 1, Outcome.STOP)
    request = backend.requests[0]
    assert (
        request.messages[0]["role"] == "system" and "Calculator" in request.messages[0]["content"]
    )
    assert request.messages[1:] == [{"role": "user", "content": "Hi there"}]
    assert request.assistant_prefix == PRIMER  # the walkthrough's primer on raw-prompt backends
    assert request.params.temperature == 0.1 and request.params.top_p == 0.15
    assert request.params.repetition_penalty == 1.1 and request.params.max_tokens == 512


async def test_calculator_then_answer_reaches_158_39() -> None:
    backend = ScriptedBackend(
        [
            call("Calculator", "from math import sqrt; output = sqrt(512)*7"),
            call("Final Answer", "The square root of 512 multiplied by 7 is about 158.39."),
        ]
    )
    events = await collect(Agent(backend, tools()).run(QUESTION))
    assert kinds(events) == [
        "StepStarted",
        "ToolCalled",
        "ToolResult",
        "StepStarted",
        "AgentFinished",
    ]
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.tool == "Calculator" and result.ok and result.output.startswith("158.39")
    assert 0 < result.duration < 5
    assert finished(events).outcome is Outcome.STOP and finished(events).steps == 2
    first, second = (r.messages for r in backend.requests)
    assert second[: len(first)] == first  # append-only: step 2's prompt extends step 1's
    assert second[-2]["role"] == "assistant" and second[-2]["content"].startswith(PRIMER)
    assert second[-1] == {"role": "user", "content": "Tool Output: 158.39191898578665"}


async def test_search_then_calculator_then_answer() -> None:
    backend = ScriptedBackend(
        [
            call("Search", "height of the Eiffel Tower"),
            call("Calculator", "output = 330 * 2"),
            call("Final Answer", "Two Eiffel Towers are 660 metres tall."),
        ]
    )
    events = await collect(Agent(backend, tools()).run("How tall are two Eiffel Towers?"))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [(r.tool, r.ok) for r in results] == [("Search", True), ("Calculator", True)]
    assert "330 metres" in results[0].output and results[1].output == "660"
    assert finished(events) == AgentFinished(
        "Two Eiffel Towers are 660 metres tall.", 3, Outcome.STOP
    )
    observation = backend.requests[1].messages[-1]["content"]
    assert observation.startswith("Tool Output: Search results") and "untrusted" in observation


async def test_malformed_json_is_fed_back_and_the_model_recovers() -> None:
    backend = ScriptedBackend(
        [
            "I think I should use a calculator for this.",
            call("Calculator", "sqrt(512)*7", primed=False),  # ignores the primer: still parsed
            call("Final Answer", "About 158.39."),
        ]
    )
    events = await collect(Agent(backend, tools()).run(QUESTION))
    assert kinds(events) == [
        "StepStarted",
        "StepError",
        "StepStarted",
        "ToolCalled",
        "ToolResult",
        "StepStarted",
        "AgentFinished",
    ]
    error = next(e for e in events if isinstance(e, StepError))
    assert error.step == 1 and "not valid JSON" in error.message
    assert error.raw.endswith("I think I should use a calculator for this.")
    correction = backend.requests[1].messages[-1]["content"]
    assert correction.startswith("Error: the reply is not valid JSON.")
    assert '"Calculator", "Search", "Final Answer"' in correction
    assert finished(events).answer == "About 158.39."


async def test_unknown_tool_is_fed_back_with_the_tool_list() -> None:
    backend = ScriptedBackend([call("Weather", "Paris"), call("Final Answer", "I cannot tell.")])
    events = await collect(Agent(backend, tools()).run("Weather in Paris?"))
    error = next(e for e in events if isinstance(e, StepError))
    assert error.message.startswith('there is no tool named "Weather"')
    assert not any(isinstance(e, ToolCalled) for e in events)
    assert "there is no tool named" in backend.requests[1].messages[-1]["content"]
    assert finished(events).outcome is Outcome.STOP


async def test_tool_errors_become_observations() -> None:
    def broken(text: str) -> str:
        raise RuntimeError("disk on fire")

    backend = ScriptedBackend(
        [
            call("Calculator", "1 / 0"),
            call("Broken", "x"),
            call("Final Answer", "Sorry."),
        ]
    )
    agent = Agent(backend, [calculator_tool(), tool(broken, name="Broken", register=False)])
    events = await collect(agent.run("Divide by zero"))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [r.ok for r in results] == [False, False]
    assert results[0].output.startswith("Error: ZeroDivisionError")
    assert results[1].output == "Error: Broken failed: RuntimeError: disk on fire"
    assert backend.requests[2].messages[-1]["content"].startswith("Tool Output: Error: Broken")
    assert finished(events).outcome is Outcome.STOP


async def test_step_limit_forces_one_last_answer_without_tools() -> None:
    backend = ScriptedBackend([call("Calculator", "1 + 1")] * 2 + [' Two, I think."\n}\n```'])
    events = await collect(Agent(backend, tools(), max_steps=2).run("1+1?"))
    assert [e.step for e in events if isinstance(e, StepStarted)] == [1, 2]
    assert finished(events) == AgentFinished("Two, I think.", 2, Outcome.STEP_LIMIT)
    assert answer_text(events) == "Two, I think."
    last = backend.requests[-1]
    assert len(backend.requests) == 3
    assert last.assistant_prefix == FINAL_PRIMER  # only a final answer can follow
    assert "Do not call another tool" in last.messages[-1]["content"]
    assert last.messages[:-1] == backend.requests[1].messages + [
        {"role": "assistant", "content": PRIMER + call("Calculator", "1 + 1")}
    ]


async def test_schema_backends_get_the_json_schema_and_no_primer() -> None:
    reply = json.dumps({"tool_name": "Calculator", "input": "sqrt(512)*7"})
    final = json.dumps({"tool_name": "Final Answer", "input": "158.39"})
    backend = ScriptedBackend([reply, final], capabilities=[Capability.JSON_SCHEMA])
    events = await collect(Agent(backend, tools()).run(QUESTION))
    assert finished(events).answer == "158.39"
    request = backend.requests[0]
    assert request.assistant_prefix == "" and request.params.stop == ()
    assert request.json_schema == action_schema(["Calculator", "Search"])
    assert request.json_schema["properties"]["tool_name"]["enum"] == [
        "Calculator",
        "Search",
        "Final Answer",
    ]


async def test_schema_at_the_step_limit_allows_only_a_final_answer() -> None:
    reply = json.dumps({"tool_name": "Calculator", "input": "2"})
    final = json.dumps({"tool_name": "Final Answer", "input": "2"})
    backend = ScriptedBackend([reply, final], capabilities=[Capability.JSON_MODE])
    events = await collect(Agent(backend, tools(), max_steps=1).run("2?"))
    assert finished(events) == AgentFinished("2", 1, Outcome.STEP_LIMIT)
    assert backend.requests[-1].json_schema["properties"]["tool_name"]["enum"] == ["Final Answer"]


async def test_native_tool_calls() -> None:
    backend = ScriptedBackend(
        [
            [ToolCall("Calculator", json.dumps({"input": "sqrt(512)*7"}))],
            [ToolCall("Weather", "{}")],
            "The answer is 158.39.",
        ],
        capabilities=[Capability.TOOL_CALLING],
    )
    events = await collect(Agent(backend, tools(), native_tools=True).run(QUESTION))
    assert kinds(events) == [
        "StepStarted",
        "ToolCalled",
        "ToolResult",
        "StepStarted",
        "StepError",
        "StepStarted",
        "AgentFinished",
    ]
    assert next(e for e in events if isinstance(e, ToolResult)).output.startswith("158.39")
    assert finished(events).answer == "The answer is 158.39."
    assert answer_text(events) == "The answer is 158.39."
    request = backend.requests[0]
    assert [spec["function"]["name"] for spec in request.tools] == ["Calculator", "Search"]
    assert request.json_schema is None and request.assistant_prefix == ""
    assert backend.requests[1].messages[-1] == {
        "role": "user",
        "content": "Tool Output: 158.39191898578665",
    }


def test_native_tools_need_a_backend_that_supports_them() -> None:
    with pytest.raises(ConfigError, match="does not support native tool calling"):
        Agent(ScriptedBackend(), tools(), native_tools=True)


async def test_backend_failure_ends_the_run_with_its_error() -> None:
    backend = ScriptedBackend([Unreachable("cannot reach the server at http://x: start it")])
    events = await collect(Agent(backend, tools()).run("hi"))
    assert finished(events) == AgentFinished(
        "", 1, Outcome.ERROR, error="cannot reach the server at http://x: start it"
    )


async def test_cancel_during_generation_stops_promptly() -> None:
    backend = ScriptedBackend([])  # no script: the model never answers
    cancel = CancelToken()
    agent_events = Agent(backend, tools()).run("hi", cancel=cancel)
    asyncio.get_running_loop().call_later(0.2, cancel.cancel)
    started = time.monotonic()
    events = await collect(agent_events)
    assert time.monotonic() - started < 2
    assert finished(events).outcome is Outcome.CANCELLED


async def test_cancel_during_a_tool_stops_promptly() -> None:
    async def slow(text: str) -> str:
        await asyncio.sleep(30)
        return "late"

    cancel = CancelToken()
    backend = ScriptedBackend([call("Slow", "x")])
    events: list[AgentEvent] = []
    started = time.monotonic()
    async for event in Agent(backend, [Tool("Slow", "waits", slow)]).run("go", cancel=cancel):
        events.append(event)
        if isinstance(event, ToolCalled):
            cancel.cancel()
    assert time.monotonic() - started < 2
    assert kinds(events) == ["StepStarted", "ToolCalled", "AgentFinished"]
    assert finished(events).outcome is Outcome.CANCELLED


async def test_closing_the_event_stream_closes_the_backend_stream() -> None:
    backend = ScriptedBackend([call("Final Answer", "x" * 200)], chunk=1, delay=0.01)
    run = Agent(backend, tools()).run("hi")
    async for event in run:
        if isinstance(event, AnswerDelta):
            break
    assert backend.closed == 0
    await run.aclose()  # e.g. the web page was closed
    for _ in range(3):  # Backend.stream leaves its inner generator to the loop's finalizer
        await asyncio.sleep(0)
    assert backend.closed == 1


async def test_history_goes_between_the_system_message_and_the_query() -> None:
    backend = ScriptedBackend([call("Final Answer", "Paris.")])
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    await collect(Agent(backend, tools()).run("Capital of France?", history=history))
    assert backend.requests[0].messages[1:] == [
        *history,
        {"role": "user", "content": "Capital of France?"},
    ]


# -- the protocol ------------------------------------------------------------------------------

NAMES = ["Calculator", "Search"]


@pytest.mark.parametrize(
    ("text", "primer", "expected"),
    [
        ('{"tool_name": "Calculator", "input": "1+1"}', "", ("Calculator", "1+1")),
        ('```json\n{\n"tool_name": "Search",\n"input": "uk pm"\n}\n```', "", ("Search", "uk pm")),
        (
            'Sure! Here is my answer:\n{"tool_name": "Final Answer", "input": "Hi"}\nHope it helps',
            "",
            ("Final Answer", "Hi"),
        ),
        ("{'tool_name': 'Calculator', 'input': 'sqrt(2)'}", "", ("Calculator", "sqrt(2)")),
        (
            ' "Calculator",\n"input": "output = 2**8"\n}\n```\nTool Output: 256',
            PRIMER,
            ("Calculator", "output = 2**8"),
        ),
        (
            '{"tool_name": "Calculator", "input": "a = 1\nb = 2\noutput = a + b"}',
            "",
            ("Calculator", "a = 1\nb = 2\noutput = a + b"),
        ),
        ('{"tool_name": "final answer", "input": "cut sho', "", ("Final Answer", "cut sho")),
        ('{"tool": "search", "query": "x"}', "", ("Search", "x")),
        ('{"tool_name": "Calculator", "input": 42}', "", ("Calculator", "42")),
        (
            '{"tool_name": "Final_Answer", "input": "{not json} fine"}',
            "",
            ("Final Answer", "{not json} fine"),
        ),
    ],
)
def test_parse_action_is_tolerant(text: str, primer: str, expected: tuple[str, str]) -> None:
    action = parse_action(text, NAMES, primer)
    assert (action.tool_name, action.input) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no json here", "no JSON object"),
        ('{"tool_name": "Calculator"}', 'no "input"'),
        ('{"input": "x"}', 'no "tool_name"'),
        ('{"tool_name": "Python", "input": "x"}', 'there is no tool named "Python"'),
        ("{tool_name: Calculator}", "not valid JSON"),
    ],
)
def test_parse_action_explains_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_action(text, NAMES)


def test_recorded_reply_drops_what_the_model_invents_after_its_call() -> None:
    reply = PRIMER + ' "Calculator",\n"input": "1"\n}\n```\nTool Output: 2\n```json\n{...'
    assert recorded_reply(reply) == PRIMER + ' "Calculator",\n"input": "1"\n}\n```'


def test_answer_stream_decodes_escapes_split_across_chunks() -> None:
    reply = '{"tool_name": "Final Answer", "input": "Line 1\\nA \\"quote\\" \\u00e9 done"} trailing'
    stream = AnswerStream()
    pieces = [stream.feed(reply[:end]) for end in range(1, len(reply) + 1)]
    assert "".join(pieces) == 'Line 1\nA "quote" é done'
    assert stream.closed


def test_answer_stream_ignores_other_tools() -> None:
    stream = AnswerStream()
    assert stream.feed('{"tool_name": "Calculator", "input": "1+1"}') == ""


# -- user tools --------------------------------------------------------------------------------


@pytest.fixture
def weather() -> Iterator[Tool]:
    @mixchat.tool(input_description="a city name")
    async def weather(city: str) -> str:
        """Today's weather in a city.

        More detail that is not part of the description.
        """
        return f"Sunny in {city}"

    yield weather
    unregister_tool("weather")


async def test_decorated_tools_are_registered_everywhere(weather: Tool) -> None:
    assert isinstance(weather, mixchat.Tool)
    assert [t.name for t in registered_tools()] == ["Calculator", "Search", "weather"]
    assert weather.description == "Today's weather in a city."
    assert "- weather: Today's weather in a city. (input: a city name)" in system_message(
        registered_tools()
    )
    backend = ScriptedBackend(
        [call("weather", "Paris"), call("Final Answer", "Sunny.")],
        capabilities=[Capability.JSON_SCHEMA],
    )
    backend.replies = [
        json.dumps({"tool_name": "weather", "input": "Paris"}),
        json.dumps({"tool_name": "Final Answer", "input": "Sunny."}),
    ]
    events = await collect(Agent(backend).run("Weather in Paris?"))  # default: registered tools
    assert next(e for e in events if isinstance(e, ToolResult)).output == "Sunny in Paris"
    assert "weather" in backend.requests[0].json_schema["properties"]["tool_name"]["enum"]


async def test_sync_tools_run_off_the_event_loop() -> None:
    import threading

    seen: list[str] = []

    @tool(register=False)
    def where(text: str) -> str:
        """Reports its thread."""
        seen.append(threading.current_thread().name)
        return text

    assert await where.run("x") == "x"
    assert seen and seen[0] != threading.main_thread().name


def test_bad_tools_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigError, match="takes one string argument"):
        tool(lambda a, b: a, register=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid tool name"):
        Tool("Final Answer", "no", lambda text: text)
    with pytest.raises(ConfigError, match="same name"):
        Agent(ScriptedBackend(), [calculator_tool(), calculator_tool()])


# -- the terminal view -------------------------------------------------------------------------


async def test_terminal_view_prints_steps_and_streams_the_answer() -> None:
    from mixchat.cli.agent_view import print_agent_events

    backend = ScriptedBackend(
        [
            call("Calculator", "from math import sqrt; output = sqrt(512)*7"),
            "oops",
            call("Final Answer", "It is about 158.39."),
        ]
    )
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None)
    result = await print_agent_events(Agent(backend, tools()).run(QUESTION), console)
    printed = buffer.getvalue()
    assert result.outcome is Outcome.STOP and result.answer == "It is about 158.39."
    assert "Step 1" in printed and "→ Calculator: from math import sqrt" in printed
    assert "← 158.39191898578665" in printed
    assert "! not a valid tool call" in printed
    assert printed.rstrip().endswith("Answer:\nIt is about 158.39.")


# -- end to end on the embedded model ----------------------------------------------------------


@pytest.mark.slow
async def test_embedded_model_runs_valid_steps_with_the_grammar(embedded_gguf: Path) -> None:
    """Gemma 270M is too small to answer well, but with the grammar every step must parse, and
    each step's prompt must re-use the KV cache of the last (the conversation is append-only)."""
    from mixchat.backends import ChatRequest, close_all, get_backend
    from mixchat.config import AGENT_SAMPLING, load_settings

    backend = get_backend(load_settings(backend="llamacpp"))
    assert Capability.JSON_SCHEMA in backend.capabilities
    await backend.load()
    requests: list[ChatRequest] = []
    evaluated: list[tuple[int, int]] = []  # (request number, tokens in one eval batch)
    stream, evaluate = backend.stream, backend._llm.eval  # type: ignore[attr-defined]

    def recording_stream(request: ChatRequest) -> AsyncIterator[object]:
        requests.append(request)
        return stream(request)

    def recording_eval(tokens: list[int]) -> None:
        evaluated.append((len(requests), len(tokens)))
        evaluate(tokens)

    backend.stream = recording_stream  # type: ignore[method-assign]
    backend._llm.eval = recording_eval  # type: ignore[attr-defined]
    params = AGENT_SAMPLING.model_copy(update={"max_tokens": 96, "seed": 0})
    agent = Agent(backend, tools(), max_steps=2, params=params)
    try:
        events = await collect(agent.run(QUESTION))
        prompts = [
            len(backend.prompt_tokens(r.messages, r.assistant_prefix))  # type: ignore[attr-defined]
            for r in requests
        ]
    finally:
        await close_all()
    end = finished(events)
    assert end.outcome in (Outcome.STOP, Outcome.STEP_LIMIT), end
    assert end.steps <= 2 and end.answer
    assert not any(isinstance(e, StepError) for e in events), events
    for event in events:
        if isinstance(event, ToolCalled):
            assert event.tool in ("Calculator", "Search")
    assert len(prompts) >= 2
    for number, prompt in enumerate(prompts[1:], start=2):
        # prompt tokens evaluated for this call (batches of one are sampled tokens)
        fresh = sum(size for n, size in evaluated if n == number and size > 1)
        assert fresh < prompt / 2, (number, fresh, prompt)
