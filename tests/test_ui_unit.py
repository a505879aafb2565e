"""The web app's logic without a browser: history, context fitting, batching, rendering,
settings, and the chat callback driven in-process against the echo backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import panel as pn
import pytest
from pydantic import SecretStr

from mixchat import backends
from mixchat.backends import CancelToken
from mixchat.backends.events import Done
from mixchat.config import Settings, load_settings
from mixchat.config.catalog import USER_ENDPOINT
from mixchat.errors import AuthError, Unreachable
from mixchat.prompt.inspector import fit_context
from mixchat.store import ConversationStore
from mixchat.ui import chat as chat_module
from mixchat.ui.chat import ChatController, welcome_text
from mixchat.ui.conversations import ConversationsPanel
from mixchat.ui.history import History, Turn
from mixchat.ui.sections import Section, Sections
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.stats import error_advice, format_stats
from mixchat.ui.storage import StoreGateway, close_stores
from mixchat.ui.transcript import Entry, Op, Transcript
from mixchat.ui.transcript.batching import MAX_INTERVAL, MIN_INTERVAL, Batcher
from mixchat.ui.transcript.component import REPLAY
from scripted_backend import ScriptedBackend

#: Bytes of framing each custom message costs on the websocket (measured: 230-260).
FRAME_BYTES = 260


@pytest.fixture(autouse=True)
async def _fresh_backends() -> AsyncIterator[None]:
    yield
    await backends.close_all()
    close_stores()


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(
        **{"backend": "echo", "echo_delay": 0.0, "data_dir": tmp_path, **overrides}
    )


# -- history and context ---------------------------------------------------------------------


def test_history_sends_the_whole_conversation_with_the_system_prompt() -> None:
    history = History([Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")])
    assert history.messages("be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_history_leaves_out_failed_exchanges_so_roles_alternate() -> None:
    history = History(
        [
            Turn("user", "a"),
            Turn("assistant", "", "error"),
            Turn("user", "b"),
            Turn("assistant", "partial", "stopped"),
            Turn("user", "c"),
        ]
    )
    assert [m["content"] for m in history.messages()] == ["b", "partial", "c"]


def test_fit_context_drops_the_oldest_pairs_and_keeps_system_and_last() -> None:
    messages = (
        [{"role": "system", "content": "s"}]
        + [{"role": role, "content": "x " * 10} for role in ("user", "assistant") * 3]
        + [{"role": "user", "content": "last"}]
    )

    def count(ms: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) for m in ms)

    fitted, dropped = fit_context(messages, count, context_length=40, max_tokens=10)
    assert dropped == messages[1:5]
    assert fitted[0]["role"] == "system" and fitted[-1]["content"] == "last"
    assert count(fitted) + 10 <= 40
    assert fit_context(messages, count, None, 10) == (messages, [])


@pytest.mark.parametrize("context_length", [5, 40, 200, 900, 5000])
def test_fit_context_drops_what_one_pair_at_a_time_would_in_a_few_counts(
    context_length: int,
) -> None:
    """Bisection gives the same cut as dropping pair after pair, with ~log2(pairs) counts."""
    messages = [
        {"role": role, "content": "w " * (3 + (7 * index) % 40)}
        for index, role in enumerate(("user", "assistant") * 60)
    ] + [{"role": "user", "content": "last"}]
    counted = [0]

    def count(ms: list[dict[str, str]]) -> int:
        counted[0] += 1
        return 5 + sum(len(m["content"].split()) + 2 for m in ms)

    body, expected = list(messages), []
    while len(body) > 1 and count(body) + 10 > context_length:  # the plain way
        expected, body = expected + body[:2], body[2:]
    counted[0] = 0
    assert fit_context(messages, count, context_length, 10) == (body, expected)
    assert counted[0] <= 8  # 60 pairs: one count per pair would be up to 61


def test_fit_context_always_keeps_the_last_user_message() -> None:
    messages = [{"role": "user", "content": "huge " * 100}]
    assert fit_context(messages, lambda ms: 500, 100, 10) == (messages, [])


# -- batching -------------------------------------------------------------------------------


def test_batcher_sends_the_first_text_at_once_then_waits_longer_and_longer() -> None:
    now = [0.0]
    batch = Batcher(clock=lambda: now[0])
    assert batch.wait() == float("inf")  # nothing to send
    batch.add("a")
    assert batch.wait() <= 0 and batch.take() == "a"  # the first text goes at once
    now[0] = 0.01
    batch.add("b")
    assert batch.wait() > 0  # within the shortest interval
    now[0] = 0.01 + MIN_INTERVAL
    batch.add("c")
    assert batch.wait() <= 0 and batch.take() == "bc"
    now[0] = 10.0
    batch.take()
    batch.add("d")
    assert batch.wait() == pytest.approx(MAX_INTERVAL)  # a long reply: the longest wait


@pytest.mark.parametrize("tokens_per_second", [20, 40, 70, 200, 1000])
def test_a_1000_token_reply_costs_at_most_3x_its_size(tokens_per_second: int) -> None:
    """The target, on the batcher's own arithmetic: text plus framing per update.

    It holds from 20 tokens/s (the embedded model streams ~40 here); slower, MAX_INTERVAL
    wins: text is never held back more than two seconds for the sake of bytes.
    """
    now = [0.0]
    batch = Batcher(clock=lambda: now[0])
    updates = sent = 0
    for index in range(1000):
        now[0] = index / tokens_per_second
        batch.add("word ".rjust(6))
        if batch.wait() <= 0:
            sent += len(batch.take())
            updates += 1
    updates += bool(batch.pending)
    assert updates <= 45, updates  # ~20-40 updates, not 1000
    assert sent + len(batch.pending) + updates * FRAME_BYTES <= 3 * 6000


# -- the transcript component ---------------------------------------------------------------


def test_transcript_keeps_what_it_shows_and_sends_dicts_as_json() -> None:
    transcript = Transcript()
    sent: list[list[object]] = []
    transcript._models = {"root": None}  # type: ignore[assignment]  # as if on a page
    transcript._send_msg = lambda push: sent.extend(push[1:])  # type: ignore[method-assign]
    user = transcript.append("user", "hi <b>")
    reply = transcript.append("assistant", name="echo", status="streaming")
    transcript.set(reply, progress="Thinking…")
    transcript.finish(reply, "complete", footer="2 tokens")
    assert [op[0] for op in sent] == [Op.APPEND, Op.APPEND, Op.SET, Op.SET]
    assert all(isinstance(part, (str, int, bool)) for op in sent for part in op)
    assert json.loads(str(sent[0][1])) == {
        "id": user,
        "role": "user",
        "text": "hi <b>",
        "status": "complete",
    }
    transcript.remove_from(user)
    assert transcript.entries == [] and sent[-1] == [Op.REMOVE_FROM, user]


def test_a_view_that_renders_late_gets_the_whole_transcript() -> None:
    transcript = Transcript()
    transcript.append("notice", "welcome")
    transcript._get_model = lambda *a: None  # type: ignore[method-assign]
    transcript.param.update(messages=[e.wire() for e in transcript.entries])
    transcript._dirty = False
    sent: list[list[object]] = []
    transcript._models = {"root": None}  # type: ignore[assignment]
    transcript._send_msg = lambda push: sent.extend(push[1:])  # type: ignore[method-assign]
    transcript._handle_msg({"type": "ready"})
    assert sent == []  # the page-build parameter already had it all
    transcript.append("user", "pushed before the view listened")
    transcript._handle_msg({"type": "ready"})
    load, busy = sent[-2:]  # the whole transcript, and whether a reply is being written
    assert load[0] == Op.LOAD and len(json.loads(str(load[1]))) == 2
    assert busy == [Op.BUSY, False]


class _Socket:
    """A transcript socket that records what it is sent (``alive``: False once closed)."""

    def __init__(self) -> None:
        self.pushes: list[list[object]] = []
        self.alive = True

    def push(self, text: str) -> bool:
        if self.alive:
            self.pushes.append(json.loads(text))
        return self.alive

    def close(self) -> None:
        self.alive = False


def test_pushes_are_numbered_and_a_reopened_socket_gets_what_it_missed() -> None:
    transcript = Transcript()
    bokeh: list[list[object]] = []
    transcript._models = {"root": None}  # type: ignore[assignment]
    transcript._send_msg = bokeh.append  # type: ignore[method-assign]
    transcript.append("user", "one")
    transcript._drain()
    socket, later = _Socket(), _Socket()
    transcript.listen(socket, seen=1)  # type: ignore[arg-type]
    assert socket.pushes == []  # it had push 1 (from Bokeh's socket)
    for text in ("two", "three"):
        transcript.append("user", text)
        transcript._drain()
    assert [push[0] for push in bokeh] == [1] and [p[0] for p in socket.pushes] == [2, 3]
    socket.alive = False  # gone without a word: the next push falls back to Bokeh's
    transcript.append("user", "four")
    transcript._drain()
    assert [push[0] for push in bokeh] == [1, 4]
    transcript.listen(later, seen=2)  # type: ignore[arg-type]  # the page lost push 3
    assert [push[0] for push in later.pushes] == [3, 4]  # 4 twice: the page drops one
    assert not socket.alive


def test_a_socket_that_missed_more_than_is_kept_gets_the_whole_transcript() -> None:
    transcript = Transcript()
    transcript._models = {"root": None}  # type: ignore[assignment]
    transcript._send_msg = lambda push: None  # type: ignore[method-assign]
    for index in range(REPLAY + 5):
        transcript.append("user", f"message {index}")
        transcript._drain()
    socket = _Socket()
    transcript.listen(socket, seen=2)  # type: ignore[arg-type]
    ops = [op for push in socket.pushes for op in push[1:]]
    assert socket.pushes[0][0] == REPLAY + 6 and [op[0] for op in ops] == [Op.LOAD, Op.BUSY]
    assert len(json.loads(ops[0][1])) == REPLAY + 5


def test_transcript_events_skip_the_busy_counter() -> None:
    """The browser's messages reach the handler through Panel's event path (the override of
    ``_process_bokeh_event``), and Panel's busy counter is never touched on the way."""
    from bokeh.document import Document
    from panel.io.state import state
    from panel.models.esm import DataEvent

    transcript = Transcript()
    heard: list[tuple[str, dict[str, object]]] = []
    transcript.on_action = lambda kind, data: heard.append((kind, data))
    doc = Document()
    model = transcript.get_root(doc)
    counted: list[str] = []
    state.param.watch(lambda event: counted.append(event.name), ["_busy_counter", "busy"])
    transcript._process_bokeh_event(doc, DataEvent(model=model, data={"type": "stop"}))
    assert heard == [("stop", {"type": "stop"})]
    assert counted == [] and not state.busy


# -- stats and errors -----------------------------------------------------------------------


def test_stats_line_has_tokens_speed_first_token_and_reason() -> None:
    done = Done("length", 12, 40, 0.25, 2.0, 21.3)
    line = format_stats(done)
    assert line == (
        "40 tokens · 21.3 tok/s · first token 0.25 s · total 2.0 s · hit the max new tokens limit"
    )


def test_advice_follows_the_error_as_a_sentence_and_one_token_is_singular() -> None:
    from mixchat.outcome import Outcome, Stats

    line = error_advice(
        Unreachable(
            "the server at x closed the connection without an answer; gave up after 3 retries"
        )
    )
    assert line.startswith("The server at x closed")
    assert "after 3 retries. Check that the server is running" in line
    assert error_advice(AuthError("Bad key.")).startswith("Bad key. Check the API key")
    assert format_stats(Stats(Outcome.STOP, completion_tokens=1)).startswith("1 token ·")
    assert format_stats(Stats(Outcome.STOP, completion_tokens=2)).startswith("2 tokens ·")
    loaded = format_stats(Stats(Outcome.STOP, 3, 2, 0.25, 1.0, 8.0, load_time=4.2))
    assert "model loaded in 4.2 s · first token 0.25 s" in loaded
    assert Stats.from_dict(Stats(Outcome.STOP, load_time=4.2).to_dict()).load_time == 4.2


async def test_a_remote_backend_connects_instead_of_loading_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixchat.ui.reply import LiveReply
    from processes import free_port

    shown: list[str] = []
    original = LiveReply.status

    def status(self: LiveReply, text: str) -> None:
        shown.append(text)
        original(self, text)

    monkeypatch.setattr(LiveReply, "status", status)
    url = f"http://127.0.0.1:{free_port()}/v1"
    chat = _controller(_settings(tmp_path, backend="openai", base_url=url, max_retries=0))
    await _say(chat, "anyone?")
    assert any(text.startswith("Connecting to the server at http://127.0.0.1") for text in shown), (
        shown
    )
    assert not any("Loading the model" in text for text in shown)


def test_a_base_url_must_be_a_url(tmp_path: Path) -> None:
    from mixchat.errors import ConfigError

    with pytest.raises(ConfigError, match="'gpu-box:8000' is not a URL"):
        _settings(tmp_path, base_url="gpu-box:8000")
    assert _settings(tmp_path, base_url=" http://gpu-box:8000/v1 ").base_url == (
        "http://gpu-box:8000/v1"
    )


def test_error_advice_says_what_to_do() -> None:
    assert "API key" in error_advice(AuthError("401 unauthorized"))
    assert "server" in error_advice(Unreachable("cannot connect"))


# -- settings sidebar -----------------------------------------------------------------------


def test_sidebar_starts_from_the_tutorials_sampling_defaults(tmp_path: Path) -> None:
    panel = SettingsPanel(_settings(tmp_path))
    params = panel.sampling()
    assert (params.temperature, params.top_k, params.top_p, params.max_tokens) == (
        0.7,
        50,
        0.95,
        256,
    )
    panel.temperature = 1.3
    panel.max_tokens = 512
    assert panel.sampling().temperature == 1.3
    panel.reset_sampling()
    assert panel.sampling().temperature == 0.7 and panel.sampling().max_tokens == 256


def test_the_generation_widgets_are_made_on_demand_and_follow_the_settings(
    tmp_path: Path,
) -> None:
    catalog = {
        "quick": {"backend": "echo", "name": "Quick echo", "max_tokens_limit": 64},
        "long": {"backend": "echo", "name": "Long echo"},
    }
    panel = SettingsPanel(_settings(tmp_path, models=catalog))
    section = panel.sampling_section()
    prompt, temperature, max_tokens = section[0], section[1], section[4]
    temperature.value = 1.1  # the user moves the slider
    prompt.value = "Be brief."
    assert panel.sampling().temperature == 1.1 and panel.settings().system_prompt == "Be brief."
    panel.reset_sampling()  # the settings move the slider
    assert temperature.value == 0.7
    assert max_tokens.end == 64  # the quick entry's limit
    panel.picker.model = "long"
    assert max_tokens.end == 4096 and max_tokens.value == 256
    panel.set_sampling("temperature", 9)  # e.g. a saved conversation's: kept in range
    assert temperature.value == 2.0


def test_api_key_is_kept_on_the_server_and_cleared_from_the_widget(tmp_path: Path) -> None:
    panel = SettingsPanel(_settings(tmp_path, allow_user_endpoints=True))
    panel.picker.model = USER_ENDPOINT
    assert panel.endpoint is not None
    panel.endpoint.base_url.value = "https://api.example.org/v1"
    assert panel.endpoint.key_status.object == "No key set."
    panel.endpoint.api_key.value = "sk-secret-123"
    assert panel.endpoint.api_key.value == ""  # nothing to send back to the browser
    assert "Key set" in panel.endpoint.key_status.object
    settings = panel.settings()
    assert (settings.backend, settings.base_url) == ("openai", "https://api.example.org/v1")
    assert isinstance(settings.openai_api_key, SecretStr)
    assert settings.openai_api_key.get_secret_value() == "sk-secret-123"
    assert settings.untrusted_endpoint and settings.mistral_api_key is None
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(panel.snapshot())
    assert "api.example.org" not in str(panel.snapshot())


def test_without_user_endpoints_a_typed_key_or_url_is_never_used(tmp_path: Path) -> None:
    panel = SettingsPanel(_settings(tmp_path, openai_api_key="sk-server"))
    assert USER_ENDPOINT not in [value for value, _ in panel.picker.models]
    panel.picker.model = USER_ENDPOINT  # what a hostile browser could send anyway
    assert panel.endpoint is None  # and no widget to type a URL or key into
    assert not any(isinstance(w, pn.widgets.PasswordInput) for w in panel.model_section().select())
    settings = panel.settings()
    assert settings.backend == "echo" and settings.base_url is None
    assert settings.openai_api_key is None  # the server's key stays with its own entry


def test_a_session_picks_catalog_models_by_name_only(tmp_path: Path) -> None:
    catalog = {
        "quick": {"backend": "echo", "name": "Quick echo", "max_tokens_limit": 64},
        "remote": {
            "backend": "openai",
            "name": "Team GPU",
            "base_url": "http://gpu-box:8000/v1",
            "model": "mixtral",
            "temperature": 0.2,
        },
    }
    panel = SettingsPanel(_settings(tmp_path, models=catalog))
    assert panel.picker.models == [["quick", "Quick echo"], ["remote", "Team GPU"]]
    assert panel.param.max_tokens.bounds[1] == 64
    panel.max_tokens = 64
    panel.picker.model = "remote"
    assert panel.temperature == 0.2  # the entry's default sampling
    settings = panel.settings()
    assert (settings.backend, settings.model, settings.base_url) == (
        "openai",
        "mixtral",
        "http://gpu-box:8000/v1",
    )
    for hostile in ("/etc/passwd", "http://127.0.0.1:9/v1", "TheBloke/x:y.gguf", ""):
        panel.picker.model = hostile
        assert panel.settings().backend == "echo" and panel.settings().model is None
    with pytest.raises(ValueError):  # not even a string: refused before anything reads it
        panel.picker.model = None  # type: ignore[assignment]
    assert panel.settings().max_tokens <= 64


# -- the chat callback ----------------------------------------------------------------------


def _controller(settings: Settings, owner: str = "local") -> ChatController:
    return ChatController(SettingsPanel(settings), StoreGateway(settings, owner))


async def _say(chat: ChatController, text: str) -> None:
    await chat.send(text)
    await chat.wait()


def _shown(chat: ChatController, role: str) -> list[Entry]:
    return [entry for entry in chat.transcript.entries if entry.role == role]


def test_welcome_names_the_model_and_how_to_switch_from_the_demo(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert "echo backend" in welcome_text(backends.get_backend(settings), settings)
    demo = load_settings(backend="llamacpp", data_dir=tmp_path)
    text = welcome_text(backends.get_backend(demo), demo)
    assert "tiny demo model" in text and "--backend mistral" in text and "--model" in text


async def test_a_turn_streams_a_reply_with_stats_and_is_saved(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "hello there")
    await _say(chat, "second")
    turns = chat.history.turns
    assert [(t.role, t.content, t.status) for t in turns] == [
        ("user", "hello there", "complete"),
        ("assistant", "hello there", "complete"),
        ("user", "second", "complete"),
        ("assistant", "second", "complete"),
    ]
    assert turns[-1].stats is not None and turns[-1].stats.completion_tokens == 1
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert stored.title == "hello there"
    assert [(m.role, m.content) for m in stored.messages] == [(t.role, t.content) for t in turns]
    assert stored.messages[-1].stats.outcome == "stop"


async def test_an_opened_conversation_continues_with_its_history(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "first")
    other = _controller(settings)
    await other.open(chat.conversation_id)
    assert [t.content for t in other.history.turns] == ["first", "first"]
    await _say(other, "next")
    assert other.conversation_id == chat.conversation_id
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert [m.content for m in stored.messages] == ["first", "first", "next", "next"]


async def test_an_opened_conversation_reads_a_replys_prompt_only_to_inspect_it(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "first")  # the echo reply records its prompt
    other = _controller(settings)
    await other.open(chat.conversation_id)
    reply = _shown(other, "assistant")[-1]
    turn = other.history.turns[-1]
    assert reply.inspect and turn.prompt is None  # "Inspect prompt", the record left stored
    sent: list[list[object]] = []
    other.transcript._models = {"root": None}  # type: ignore[assignment]
    other.transcript._send_msg = lambda push: sent.extend(push[1:])  # type: ignore[method-assign]
    await other.inspect(reply.id)
    other.transcript._drain()
    assert turn.prompt is not None and turn.prompt["messages"][-1]["content"] == "first"
    assert [op[0] for op in sent] == [Op.INSPECT] and "first" in str(sent[0][2])


async def test_overflowing_history_drops_old_turns_and_says_so(tmp_path: Path) -> None:
    settings = _settings(tmp_path, n_ctx=256, max_tokens=16)
    chat = _controller(settings)
    long = " ".join(["word"] * 100)
    for _ in range(3):
        await _say(chat, long)
    assert "oldest messages no longer fit" in _shown(chat, "assistant")[-1].notice


async def test_stop_keeps_the_partial_reply_marked_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path, echo_delay=0.01, max_tokens=4096)
    chat = _controller(settings)
    text = " ".join(f"w{i}" for i in range(500))
    task = asyncio.ensure_future(chat.send(text))
    await asyncio.sleep(0.5)
    chat._on_action("send", {"text": "too early"})  # refused while the reply streams
    assert chat.history.turns[-1].role == "user"
    chat._on_action("stop", {})  # the stop button
    await task
    reply = chat.history.turns[-1]
    assert _shown(chat, "assistant")[-1].status == "stopped"
    assert [t.content for t in chat.history.turns if t.role == "user"] == [text]
    assert reply.status == "stopped"
    assert 0 < len(reply.content) < len(text) and text.startswith(reply.content)
    assert reply.stats is not None and reply.stats.outcome == "cancelled"


async def test_a_backend_failure_becomes_a_message_and_the_chat_goes_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings = settings.model_copy(
        update={
            "models": {
                "echo": {"backend": "echo", "echo_delay": 0.0},
                "down": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            }
        }
    )
    chat = _controller(settings)
    chat.sidebar.picker.model = "down"
    await _say(chat, "hello?")
    failed = chat.history.turns[-1]
    assert failed.status == "error"
    shown = _shown(chat, "assistant")[-1]
    assert shown.status == "error" and "failed" in shown.footer and shown.error
    chat.sidebar.picker.model = "echo"
    await _say(chat, "again")
    assert chat.history.turns[-1].content == "again"
    # the failed exchange is not sent to the model again
    assert [m["content"] for m in chat.history.messages()] == ["again", "again"]


async def test_without_a_store_the_chat_works_and_says_history_is_off(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = _settings(tmp_path, database_url=f"sqlite:///{blocker}/sub/db.sqlite")
    chat = _controller(settings)
    await chat.check_store()
    await _say(chat, "still here")
    assert chat.history.turns[-1].content == "still here"
    said = [entry.text for entry in _shown(chat, "notice")]
    assert any("history is off" in text for text in said)


async def test_regenerate_and_undo_edit_the_stored_conversation(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "one")
    await _say(chat, "two")
    await chat.regenerate()
    await chat.wait()
    assert [t.content for t in chat.history.turns] == ["one", "one", "two", "two"]
    assert [e.text for e in chat.transcript.entries if e.role != "notice"] == ["one"] * 2 + [
        "two"
    ] * 2
    await chat.undo()
    await chat.wait()
    assert [t.content for t in chat.history.turns] == ["one", "one"]
    assert [e.text for e in chat.transcript.entries if e.role != "notice"] == ["one", "one"]
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert [m.content for m in stored.messages] == ["one", "one"]


async def test_an_edit_and_a_regenerated_reply_are_versions_to_switch_between(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "one")
    await _say(chat, "two")
    first = _shown(chat, "user")[0]
    chat._on_action("edit", {"id": first.id, "text": "uno"})
    await chat.wait()
    assert [t.content for t in chat.history.turns] == ["uno", "uno"]
    assert _shown(chat, "user")[0].branch == [2, 2]
    await chat.regenerate()
    await chat.wait()
    assert [e.branch for e in _shown(chat, "assistant")] == [[2, 2]]
    # the first version, and the conversation that followed it
    chat._on_action("branch", {"id": _shown(chat, "user")[0].id, "step": -1})
    await chat.wait()
    assert [e.text for e in chat.transcript.entries if e.role != "notice"] == [
        "one", "one", "two", "two"
    ]  # fmt: skip
    assert _shown(chat, "user")[0].branch == [1, 2]
    assert [m["content"] for m in chat.history.messages()] == ["one", "one", "two", "two"]
    store = ConversationStore(settings.database)
    assert [m.content for m in store.get("local", chat.conversation_id).messages] == [
        "one", "one", "two", "two"
    ]  # fmt: skip
    assert len(store.get("local", chat.conversation_id).tree) == 7  # nothing was deleted
    reopened = _controller(settings)
    await reopened.open(chat.conversation_id)  # the branch last used
    assert [t.content for t in reopened.history.turns] == ["one", "one", "two", "two"]


async def test_a_page_that_follows_a_reply_reads_it_back_from_the_store(tmp_path: Path) -> None:
    settings = _settings(tmp_path, echo_delay=0.01, max_tokens=4096)
    writer = _controller(settings)
    text = " ".join(f"w{i}" for i in range(100))
    task = asyncio.ensure_future(writer.send(text))
    while writer.conversation_id is None or not writer.history.turns:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    follower = _controller(settings)  # a reload mid-reply: the same conversation, live
    await follower.open(writer.conversation_id)
    assert follower.busy and _shown(follower, "assistant")[-1].status == "streaming"
    await task
    await writer.wait()
    await asyncio.wait_for(follower.wait(), 10)  # the store's copy replaces the live one
    assert [(t.role, t.content) for t in follower.history.turns] == [
        ("user", text), ("assistant", text)
    ]  # fmt: skip
    assert not follower.busy and _shown(follower, "assistant")[-1].status == "complete"


async def test_waiting_users_see_their_place_in_the_queue() -> None:
    from mixchat.backends.events import Queued, TextDelta
    from mixchat.ui.chat import stream_reply
    from mixchat.ui.reply import LiveReply

    transcript = Transcript()
    reply = LiveReply(transcript, transcript.append("assistant", status="streaming"), CancelToken())
    entry = transcript.entries[-1]
    seen: list[str] = []

    async def events() -> AsyncIterator[object]:
        yield Queued(2)
        seen.append(entry.progress)
        yield Queued(1)
        seen.append(entry.progress)
        yield TextDelta("hi")
        yield Done("stop", 3, 1, 0.5, 0.6, None)

    outcome = await stream_reply(events(), reply)
    reply.finish(outcome)
    assert "2 requests ahead of you" in seen[0] and "1 request ahead of you" in seen[1]
    assert outcome.text == "hi" and outcome.status == "complete"
    assert entry.text == "hi" and entry.progress == ""  # replaced by the reply
    assert entry.footer.startswith("1 token") and entry.status == "complete"


async def test_a_bug_ends_the_reply_with_a_clear_error(tmp_path: Path) -> None:
    from mixchat.backends.echo import EchoBackend

    class Broken(EchoBackend):
        name = "broken-for-tests"

        @property
        def context_length(self) -> int:
            raise RuntimeError("boom")

    backends.register("broken-for-tests", Broken)
    catalog = {"broken": {"backend": "broken-for-tests"}, "echo": {"backend": "echo"}}
    chat = _controller(_settings(tmp_path, models=catalog))
    await _say(chat, "hi")
    reply = chat.history.turns[-1]
    assert reply.status == "error"
    error = _shown(chat, "assistant")[-1].error
    assert "Something went wrong in mixchat" in error and "boom" in error
    chat.sidebar.picker.model = "echo"
    await _say(chat, "next")
    assert chat.history.turns[-1].content == "next"


# -- the conversation list ------------------------------------------------------------------


def _panel(chat: ChatController) -> ConversationsPanel:
    panel = ConversationsPanel(
        chat.gateway,
        on_open=chat.open,
        on_new=chat.new_chat,
        current=lambda: chat.conversation_id,
        say=chat.say,
        forget=lambda: setattr(chat, "conversation_id", None),
    )
    chat.on_saved = panel.refresh
    return panel


async def test_conversations_list_search_rename_and_delete(tmp_path: Path) -> None:
    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    await _say(chat, "about cats")
    cats = chat.conversation_id
    await chat.new_chat()
    await _say(chat, "about dogs")
    dogs = chat.conversation_id
    await panel.refresh()
    assert panel.titles == ["about dogs", "about cats"]  # newest first
    assert panel.items.current == dogs
    panel.items.query = "cat"  # the search box (the browser sets it as the user types)
    await panel.wait()
    assert panel.titles == ["about cats"]
    panel.items.query = "nothing like it"
    await panel.wait()
    assert panel.titles == [] and panel.items.notice == "No conversation matches."
    panel.items.query = ""
    await panel.wait()
    assert panel.items.notice == "" and len(panel.titles) == 2
    panel.items._handle_msg({"type": "rename", "id": cats, "title": "Cats, renamed"})
    await panel.wait()
    assert panel.titles == ["Cats, renamed", "about dogs"]  # any item, not only the open one
    assert chat.conversation_id == dogs
    panel.items._handle_msg({"type": "delete", "id": "not-listed"})  # ignored
    panel.items._handle_msg({"type": "delete", "id": dogs})  # the open one
    await panel.wait()
    assert panel.titles == ["Cats, renamed"]
    assert chat.conversation_id is None and chat.history.turns == []


async def test_a_new_message_is_stored_at_its_replys_first_text_not_during_the_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writes (and the list's redraw) would take CPU from the model reading the prompt."""
    settings = _settings(tmp_path)
    model = ScriptedBackend(["the reply"], delay=0.4)  # the first text after 0.4 s
    monkeypatch.setattr(backends, "get_backend", lambda _settings: model)
    chat = _controller(settings)
    sending = asyncio.ensure_future(chat.send("hello"))
    await asyncio.sleep(0.2)
    assert chat.conversation_id is None and [t.content for t in chat.history.turns] == ["hello"]
    await sending
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert [(m.role, m.content) for m in stored.messages] == [
        ("user", "hello"),
        ("assistant", "the reply"),
    ]


async def test_a_new_message_is_stored_within_a_second_while_the_model_is_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long prompt (a big document) must not leave the message unsaved until it is read."""
    settings = _settings(tmp_path)
    monkeypatch.setattr(backends, "get_backend", lambda _settings: ScriptedBackend())  # hangs
    monkeypatch.setattr(chat_module, "USER_SAVE_WAIT", 0.1)
    chat = _controller(settings)
    sending = asyncio.ensure_future(chat.send("hello"))
    for _ in range(100):  # the write runs in a worker thread
        await asyncio.sleep(0.05)
        if chat.conversation_id is not None and chat.history.turns[0].store_id is not None:
            break
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert [(m.role, m.content) for m in stored.messages][0] == ("user", "hello")
    assert chat.busy  # the reply is still waiting for its first text
    chat.stop()
    await sending


async def test_a_new_chat_is_listed_when_its_first_message_is_saved(tmp_path: Path) -> None:
    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    chat.on_saved = None  # only the creation can list it
    await _say(chat, "brand new")
    assert panel.titles == ["brand new"] and panel.items.current == chat.conversation_id


async def test_undoing_the_only_turn_leaves_no_conversation(tmp_path: Path) -> None:
    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    await _say(chat, "regret this")
    assert panel.titles == ["regret this"]
    await chat.undo()
    await chat.settled()
    await panel.wait()
    assert panel.titles == [] and chat.conversation_id is None
    store = ConversationStore(f"sqlite:///{tmp_path / 'mixchat.db'}")
    assert store.list("local") == []
    store.close()
    await _say(chat, "a fresh start")  # the next message makes a new conversation
    assert panel.titles == ["a fresh start"]


def test_a_list_view_that_renders_late_gets_the_address_again() -> None:
    """Under load a page's first tasks can run before the list's script listens: the address
    they send would be lost, so the view's "ready" brings the last one again."""
    from mixchat.ui.conversation_list import ConversationList

    items = ConversationList()
    sent: list[list[object]] = []
    items._models = {"root": None}  # type: ignore[assignment]
    items._send_msg = sent.append  # type: ignore[method-assign]
    items._handle_msg({"type": "ready"})
    assert sent == []  # nothing sent yet: nothing to repeat
    items.address("abc", push=True)
    items._handle_msg({"type": "ready"})
    assert sent == [["address", "abc", True], ["address", "abc", False]]


async def test_opening_another_owners_conversation_by_address_is_not_found(
    tmp_path: Path,
) -> None:
    chat = _controller(_settings(tmp_path))
    await _say(chat, "mine")
    mine = chat.conversation_id
    assert mine is not None
    other = _controller(_settings(tmp_path), owner="mallory")
    panel = _panel(other)
    await panel.open_address(mine)
    assert other.conversation_id is None and other.history.turns == []
    assert "No conversation of yours has this address" in _shown(other, "notice")[-1].text
    assert other.gateway.enabled  # a missing conversation does not turn history off
    own = _panel(chat)
    await chat.new_chat()
    await own.open_address(mine)
    assert chat.conversation_id == mine


async def test_export_and_import_round_trip(tmp_path: Path) -> None:
    import json

    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    files: list[tuple[str, str, str]] = []
    panel.items.file = lambda *file: files.append(file)  # type: ignore[method-assign]
    await _say(chat, "export me")
    await panel.refresh()
    assert chat.conversation_id is not None
    await panel.export(chat.conversation_id, "md")
    await panel.export(chat.conversation_id, "json")
    (md_name, _, markdown), (json_name, mime, exported) = files
    assert md_name == "export-me.md" and json_name == "export-me.json"
    assert "export me" in markdown and mime == "application/json"
    await chat.new_chat()
    await panel.import_file(exported.encode())
    assert chat.conversation_id is not None
    assert [t.content for t in chat.history.turns] == ["export me", "export me"]
    assert len(panel.titles) == 2
    await panel.import_file(b"not json")
    assert "not a JSON export" in panel.items.notice and panel.items.notice_error
    assert json.loads(exported)


async def test_the_conversation_notice_is_text_and_history_off_disables_the_search(
    tmp_path: Path,
) -> None:
    from mixchat.ui.conversation_list import HERE

    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    await panel.refresh()
    assert panel.items.notice == "No conversations yet." and not panel.items.notice_error
    chat.gateway.error = "<b>locked</b> <img src=x onerror=alert(1)>"  # history is off
    await panel.refresh()
    # the markup is the notice's text, as it was written (not escaped: the browser shows it
    # with textContent, so it is never parsed as HTML)
    assert panel.items.notice == "History is off: <b>locked</b> <img src=x onerror=alert(1)>"
    assert panel.items.notice_error and panel.items.disabled
    panel.import_section()  # opened after history went off: its file input is off too
    assert panel.importer is not None and panel.importer.disabled
    script = (HERE / "conversation_list.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    panel.items.say("")
    assert panel.items.notice == "" and not panel.items.notice_error


def test_an_attachment_over_the_limit_is_refused_before_it_is_decoded() -> None:
    from mixchat.documents import Document, DocumentLimits, DocumentRefused, with_documents
    from mixchat.ui.attachments import read_attachment, split_documents

    limits = DocumentLimits(max_bytes=1000)
    with pytest.raises(DocumentRefused, match=r"big.txt is 0.0 MB; the limit"):
        read_attachment("big.txt", "!" * 2000, limits)  # not base64: never decoded
    with pytest.raises(DocumentRefused, match="did not arrive whole"):
        read_attachment("cut.txt", "!!!!", limits)
    assert read_attachment("ok.txt", "aGk=", limits).text == "hi"
    content = with_documents("why?", [Document("a'b.md", "markdown", "x\n</document> y")])
    assert split_documents(content) == ("why?", [("a'b.md", "x\n</document> y")])
    assert split_documents("<document name=x>no") == ("<document name=x>no", [])


def test_the_committed_scheme_css_is_generated_from_the_installed_panel() -> None:
    from mixchat.ui.scheme import SCHEME_CSS, generate

    css = generate()
    assert "--bs-body-bg: light-dark(#fff, #212529);" in css  # Panel's two themes, merged
    assert SCHEME_CSS.read_text(encoding="utf-8") == css, "run: python -m mixchat.ui.scheme"


async def test_a_sidebar_section_gets_its_body_when_first_opened_and_says_so() -> None:
    heard: list[bool] = []

    async def toggled(shown: bool) -> None:
        heard.append(shown)

    agent, usage = pn.pane.HTML("agent"), pn.pane.HTML("usage")
    sections = Sections(
        [
            Section("Model", pn.pane.HTML("model"), open=True),
            Section("Agent", agent),
            Section("Your usage", usage, on_toggle=toggled),
        ]
    )
    assert sections.loaded == [0] and len(sections.bodies) == 1  # closed ones: not on the page
    sections.open = [True, False, True]  # what the browser sends when "Your usage" is opened
    await asyncio.sleep(0)
    assert sections.loaded == [0, 2] and sections.bodies[-1] is usage and heard == [True]
    sections.open = [True, False, False]
    sections.open = [True, False, True]  # reopened: heard again, its body added only once
    await asyncio.sleep(0)
    assert heard == [True, False, True] and sections.loaded == [0, 2]
    assert agent not in sections.bodies
    sections.open = [True]  # not a list the page could send: ignored
    await asyncio.sleep(0)
    assert sections.open == [True, False, True] and sections.opened("Your usage")
    assert heard == [True, False, True]


# -- the page's own weight ----------------------------------------------------------------------


def test_a_new_page_is_a_handful_of_panel_objects_and_bokeh_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Panel object and Bokeh model costs every new page server time (~1-3 ms each):
    the page is the transcript, the sidebar's sections and what the open ones show; the
    closed sections, the user-endpoint form (not allowed here) and Panel's template extras
    are not made."""
    from bokeh.document import Document
    from panel.viewable import Viewable

    from mixchat.ui.app import create_app

    made: list[str] = []
    init = Viewable.__init__

    def counted(self: Viewable, **params: object) -> None:
        made.append(type(self).__name__)
        init(self, **params)

    monkeypatch.setattr(Viewable, "__init__", counted)
    doc = Document()
    monkeypatch.setattr(pn.state, "curdoc", doc)
    create_app(_settings(tmp_path)).server_doc(doc)
    assert sorted(made) == sorted(
        # the template's (empty) layout and its fake root, the JS area it always adds (HTML
        # in a Row), the sidebar's sections, the conversation list, the model picker, the chat
        ["Column", "Column", "HTML", "Row", "Sections", "ConversationList", "ModelPicker"]
        + ["Transcript"]
    ), made
    assert len(list(doc.models)) <= 13
