"""Agent mode keeps the user's system prompt (before the tool instructions), and the chat
fits the context with the prompt the agent really sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mixchat import backends
from mixchat.agent import Agent
from mixchat.backends import ChatRequest
from mixchat.backends.echo import EchoBackend
from mixchat.config import load_settings
from mixchat.prompt.inspector import PromptRecord
from mixchat.ui.chat import ChatController
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.storage import StoreGateway, close_stores
from scripted_backend import ScriptedBackend

FINAL = '{"tool_name": "Final Answer", "input": "Arr, 42."}'


async def test_the_agent_sends_the_users_system_prompt_before_the_tool_instructions() -> None:
    backend = ScriptedBackend([FINAL])
    agent = Agent(backend, max_steps=2)
    history = [
        {"role": "system", "content": "ignored here: the system prompt is its own argument"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
    ]
    events = [
        e async for e in agent.run("what is 6*7?", history, system_prompt="Talk like a pirate.")
    ]
    assert events[-1].outcome == "stop"
    sent = backend.requests[0].messages
    system = sent[0]
    assert system["role"] == "system"
    assert system["content"].startswith("Talk like a pirate.\n\n")
    assert "Calculator" in system["content"]  # the tool instructions follow
    assert system["content"] == agent.system_message("Talk like a pirate.")
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]
    assert "ignored here" not in str(sent)
    without = Agent(ScriptedBackend([FINAL]))
    assert without.system_message("") == without.system_message("   ")
    assert not without.system_message("").startswith("\n")


class RecordingEcho(EchoBackend):
    """The echo backend, remembering every request it got."""

    name = "recording-echo"
    requests: list[ChatRequest] = []

    async def generate(self, request: ChatRequest) -> AsyncIterator:  # type: ignore[type-arg]
        RecordingEcho.requests.append(request)
        async for event in super().generate(request):
            yield event


@pytest.fixture(autouse=True)
async def _fresh() -> AsyncIterator[None]:
    backends.register("recording-echo", RecordingEcho)
    RecordingEcho.requests = []
    yield
    await backends.close_all()
    close_stores()


async def _say(chat: ChatController, text: str) -> None:
    await chat.send(text)


async def test_agent_mode_in_the_chat_sends_the_system_prompt_and_fits_what_it_sends(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        echo_delay=0.0,
        n_ctx=900,
        models={"rec": {"backend": "recording-echo"}},
    )
    chat = ChatController(SettingsPanel(settings), StoreGateway(settings, "local"))
    chat.sidebar.system_prompt = "Answer like a pirate."
    for index in range(4):  # earlier turns, ~75 tokens each
        await _say(chat, " ".join(f"w{index}x{i}" for i in range(70)))
    chat.sidebar.agent = True
    await _say(chat, FINAL)
    assert chat.history.turns[-1].content == "Arr, 42."
    sent = RecordingEcho.requests[-1].messages
    assert sent[0]["content"].startswith("Answer like a pirate.\n\n")
    backend = backends.get_backend(chat.sidebar.settings())
    # what is sent, plus the agent's reply, fits the context: the fit measured this prompt
    assert backend.count_tokens(sent) + 512 <= 900
    assert len(sent) < 1 + 8 + 1  # older turns were dropped to make room
    reply = [entry for entry in chat.transcript.entries if entry.role == "assistant"][-1]
    assert "oldest messages no longer fit" in reply.notice


async def test_the_agents_requests_take_the_users_turn_in_the_queue() -> None:
    backend = ScriptedBackend([FINAL])
    events = [e async for e in Agent(backend, user="alice").run("hi")]
    assert events[-1].outcome == "stop"
    assert [request.user for request in backend.requests] == ["alice"]


class LoadingEcho(RecordingEcho):
    """Recording echo with a model to load: the first reply says how long that took."""

    name = "loading-echo"
    loads_model = True

    async def load_model(self) -> None:
        await asyncio.sleep(0.05)


async def test_an_agent_reply_in_the_chat_keeps_its_last_calls_prompt_and_the_load_time(
    tmp_path: Path,
) -> None:
    backends.register("loading-echo", LoadingEcho)
    settings = load_settings(
        data_dir=tmp_path, echo_delay=0.0, models={"l": {"backend": "loading-echo"}}
    )
    chat = ChatController(SettingsPanel(settings), StoreGateway(settings, "local"))
    chat.sidebar.agent = True
    await _say(chat, FINAL)
    await chat.wait()
    turn = chat.history.turns[-1]
    assert turn.content == "Arr, 42." and turn.stats is not None
    assert turn.stats.load_time is not None and turn.stats.load_time >= 0.05
    record = PromptRecord.from_dict(turn.prompt or {})
    assert record.agent_calls == 1 and record.messages == RecordingEcho.requests[-1].messages
    reply = [entry for entry in chat.transcript.entries if entry.role == "assistant"][-1]
    assert "model loaded in" in reply.footer and reply.inspect
    stored = await chat.gateway.get(chat.conversation_id or "")
    assert stored is not None and stored.messages[-1].has_prompt
    assert await chat.gateway.prompt(stored.messages[-1].id) == turn.prompt
