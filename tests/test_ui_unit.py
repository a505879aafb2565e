"""The web app's logic without a browser: history, context fitting, batching, rendering,
settings, and the chat callback driven in-process against the echo backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mixchat import backends
from mixchat.backends.events import Done
from mixchat.config import Settings, load_settings
from mixchat.config.catalog import USER_ENDPOINT
from mixchat.errors import AuthError, Unreachable
from mixchat.store import ConversationStore
from mixchat.ui.chat import ChatController, welcome_text
from mixchat.ui.conversations import ConversationsPanel
from mixchat.ui.history import History, Turn, fit_context
from mixchat.ui.render import code_block, markdown_pane
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.stats import error_advice, format_stats
from mixchat.ui.storage import StoreGateway, close_stores
from mixchat.ui.throttle import FRAME_BYTES, Throttle


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
    assert dropped == 4
    assert fitted[0]["role"] == "system" and fitted[-1]["content"] == "last"
    assert count(fitted) + 10 <= 40
    assert fit_context(messages, count, None, 10) == (messages, 0)


def test_fit_context_always_keeps_the_last_user_message() -> None:
    messages = [{"role": "user", "content": "huge " * 100}]
    assert fit_context(messages, lambda ms: 500, 100, 10) == (messages, 0)


# -- batching -------------------------------------------------------------------------------


def test_throttle_shows_the_start_at_once_then_batches() -> None:
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    assert throttle.push("a")  # the first text shows at once
    assert throttle.flushed() == "a"
    now[0] = 0.01
    assert not throttle.push("b")  # within the interval
    now[0] = 0.06
    assert throttle.push("c") and throttle.flushed() == "abc"
    throttle.push("x" * 5000)
    throttle.flushed()
    now[0] += 0.5
    assert not throttle.push("y" * 100) and throttle.pending  # a long reply waits for a batch
    assert throttle.push("y" * 140)  # ...of MAX_BATCH characters
    throttle.flushed()
    now[0] += 1.0
    assert throttle.push("z")  # or at most MAX_WAIT seconds


@pytest.mark.parametrize("tokens_per_second", [40, 70, 150, 1000])
def test_a_1000_token_reply_costs_at_most_3x_its_size(tokens_per_second: int) -> None:
    """The target, on the throttle's own arithmetic: text plus framing per update.

    It holds from 40 tokens/s (the embedded model streams ~70 here); slower, MAX_WAIT wins:
    text is never held back more than a second for the sake of bytes.
    """
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    updates = 0
    for index in range(1000):
        now[0] = index / tokens_per_second
        if throttle.push("word ".rjust(6)):
            throttle.flushed()
            updates += 1
    updates += throttle.pending
    wire = len(throttle.text) + updates * FRAME_BYTES
    assert wire <= 3 * len(throttle.text), (updates, wire)


# -- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        '<img src=x onerror="alert(1)">',
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        "<svg onload=alert(1)>",
    ],
)
def test_markdown_never_passes_raw_html(attack: str) -> None:
    pane = markdown_pane(f"hello {attack}")
    import html

    rendered = html.unescape(pane._transform_object(pane.object)["object"])
    assert "<img" not in rendered and "<script" not in rendered and "<svg" not in rendered
    assert 'href="javascript' not in rendered


def test_markdown_highlights_code_and_keeps_formatting() -> None:
    import html

    pane = markdown_pane("**bold**\n\n```python\nprint(1)\n```")
    rendered = html.unescape(pane._transform_object(pane.object)["object"])
    assert "<strong>bold</strong>" in rendered
    assert 'class="codehilite"' in rendered


def test_code_block_fences_text_that_contains_fences() -> None:
    assert code_block("a ``` b").startswith("````\n")


# -- stats and errors -----------------------------------------------------------------------


def test_stats_line_has_tokens_speed_first_token_and_reason() -> None:
    done = Done("length", 12, 40, 0.25, 2.0, 21.3)
    line = format_stats(done)
    assert line == (
        "40 tokens · 21.3 tok/s · first token 0.25 s · total 2.0 s · hit the max new tokens limit"
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
    panel.temperature.value = 1.3
    panel.max_tokens.value = 512
    assert panel.sampling().temperature == 1.3
    panel.reset_sampling()
    assert panel.sampling().temperature == 0.7 and panel.sampling().max_tokens == 256


def test_api_key_is_kept_on_the_server_and_cleared_from_the_widget(tmp_path: Path) -> None:
    panel = SettingsPanel(_settings(tmp_path, allow_user_endpoints=True))
    panel.model.value = USER_ENDPOINT
    panel.base_url.value = "https://api.example.org/v1"
    assert panel.key_status.object == "No key set."
    panel.api_key.value = "sk-secret-123"
    assert panel.api_key.value == ""  # nothing to send back to the browser
    assert "Key set" in panel.key_status.object
    settings = panel.settings()
    assert (settings.backend, settings.base_url) == ("openai", "https://api.example.org/v1")
    assert isinstance(settings.openai_api_key, SecretStr)
    assert settings.openai_api_key.get_secret_value() == "sk-secret-123"
    assert settings.untrusted_endpoint and settings.mistral_api_key is None
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(panel.snapshot())
    assert "api.example.org" not in str(panel.snapshot())


def test_without_user_endpoints_a_typed_key_or_url_is_never_used(tmp_path: Path) -> None:
    panel = SettingsPanel(_settings(tmp_path, openai_api_key="sk-server"))
    assert USER_ENDPOINT not in panel.model.options.values()
    panel.model.value = USER_ENDPOINT  # what a hostile browser could send anyway
    panel.base_url.value = "http://127.0.0.1:9/v1"
    panel.api_key.value = "sk-typed"
    assert panel.api_key.value == ""
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
    assert panel.model.options == {"Quick echo": "quick", "Team GPU": "remote"}
    assert panel.max_tokens.end == 64
    panel.max_tokens.value = 64
    panel.model.value = "remote"
    assert panel.temperature.value == 0.2  # the entry's default sampling
    settings = panel.settings()
    assert (settings.backend, settings.model, settings.base_url) == (
        "openai",
        "mixtral",
        "http://gpu-box:8000/v1",
    )
    for hostile in ("/etc/passwd", "http://127.0.0.1:9/v1", "TheBloke/x:y.gguf", None):
        panel.model.value = hostile
        assert panel.settings().backend == "echo" and panel.settings().model is None
    assert panel.settings().max_tokens <= 64


# -- the chat callback ----------------------------------------------------------------------


def _controller(settings: Settings) -> ChatController:
    return ChatController(SettingsPanel(settings), StoreGateway(settings, "local"))


async def _say(chat: ChatController, text: str) -> None:
    await chat.send(text)


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


async def test_overflowing_history_drops_old_turns_and_says_so(tmp_path: Path) -> None:
    settings = _settings(tmp_path, n_ctx=256, max_tokens=16)
    chat = _controller(settings)
    long = " ".join(["word"] * 100)
    for _ in range(3):
        await _say(chat, long)
    notice = [m for m in chat.interface.objects][-1].object.objects[0]
    assert notice.visible and "oldest messages no longer fit" in notice.object


async def test_stop_keeps_the_partial_reply_marked_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path, echo_delay=0.01, max_tokens=4096)
    chat = _controller(settings)
    text = " ".join(f"w{i}" for i in range(500))
    task = asyncio.ensure_future(chat.send(text))
    await asyncio.sleep(0.5)
    task.cancel()  # what the stop button does to the callback
    await task
    reply = chat.history.turns[-1]
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
    chat.sidebar.model.value = "down"
    await _say(chat, "hello?")
    failed = chat.history.turns[-1]
    assert failed.status == "error"
    footer = chat.interface.objects[-1].object.objects[-1].object
    assert "failed" in footer
    chat.sidebar.model.value = "echo"
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
    said = [m.object.object for m in chat.interface.objects if m.user == "mixchat"]
    assert any("history is off" in text for text in said)


async def test_regenerate_and_undo_edit_the_stored_conversation(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    chat = _controller(settings)
    await _say(chat, "one")
    await _say(chat, "two")
    chat.undo()
    await chat.settled()
    assert [t.content for t in chat.history.turns] == ["one", "one"]
    assert chat.interface.active_widget.value_input == "two"
    stored = ConversationStore(settings.database).get("local", chat.conversation_id)
    assert [m.content for m in stored.messages] == ["one", "one"]


async def test_waiting_users_see_their_place_in_the_queue() -> None:
    from mixchat.backends.events import Queued, TextDelta
    from mixchat.ui.chat import stream_reply
    from mixchat.ui.reply import ReplyView

    view = ReplyView("model")
    seen: list[str] = []

    async def events() -> AsyncIterator[object]:
        yield Queued(2)
        seen.append(view.status.object)
        yield Queued(1)
        seen.append(view.status.object)
        yield TextDelta("hi")
        yield Done("stop", 3, 1, 0.5, 0.6, None)

    outcome = await stream_reply(events(), view)
    assert "2 requests ahead of you" in seen[0] and "1 request ahead of you" in seen[1]
    assert outcome.text == "hi" and outcome.status == "complete"
    assert view.status.object == ""  # replaced by the reply once it starts


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
    footer = chat.interface.objects[-1].object.objects[-1].object
    assert "Something went wrong in mixchat" in footer and "boom" in footer
    chat.sidebar.model.value = "echo"
    await _say(chat, "next")
    assert chat.history.turns[-1].content == "next"


# -- the conversation list ------------------------------------------------------------------


def _panel(chat: ChatController) -> ConversationsPanel:
    panel = ConversationsPanel(
        chat.gateway, on_open=chat.open, on_new=chat.new_chat, current=lambda: chat.conversation_id
    )
    chat.on_saved = panel.refresh
    return panel


async def test_conversations_list_search_rename_and_delete_with_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mixchat.ui.conversations as conversations

    monkeypatch.setattr(conversations, "CONFIRM_SECONDS", 0.2)
    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    await _say(chat, "about cats")
    await chat.new_chat()
    await _say(chat, "about dogs")
    await panel.refresh()
    assert [b.label for b in panel.items.objects] == ["about dogs", "about cats"]  # newest first
    panel.search.value_input = "cat"
    await panel.refresh()
    assert [b.label for b in panel.items.objects] == ["about cats"]
    panel.search.value_input = ""
    panel.title.value = "Dogs, renamed"
    await panel.rename_current()
    assert panel.items.objects[0].label == "Dogs, renamed"
    first_click = asyncio.ensure_future(panel.delete_current())
    await asyncio.sleep(0.05)
    assert panel.delete.label == "Click again to delete"
    await panel.delete_current()  # the confirming click
    await first_click
    assert [b.label for b in panel.items.objects] == ["about cats"]
    assert chat.conversation_id is None and chat.history.turns == []


async def test_export_and_import_round_trip(tmp_path: Path) -> None:
    import json

    chat = _controller(_settings(tmp_path))
    panel = _panel(chat)
    await _say(chat, "export me")
    await panel.refresh()
    markdown = panel.markdown_file().getvalue()
    assert "export me" in markdown
    exported = panel.json_file().getvalue()
    await chat.new_chat()
    await panel.import_file(exported.encode())
    assert chat.conversation_id is not None
    assert [t.content for t in chat.history.turns] == ["export me", "export me"]
    assert len(panel.items.objects) == 2
    await panel.import_file(b"not json")
    assert "not a JSON export" in panel.notice.object
    assert json.loads(exported)
