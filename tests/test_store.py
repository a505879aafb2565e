"""The conversation store, run on SQLite and on a throwaway PostgreSQL server alike."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import mixchat.store
from mixchat.agent.steps import Step
from mixchat.config import load_settings
from mixchat.outcome import Outcome, Stats
from mixchat.store import (
    ConversationStore,
    NotFound,
    StoreError,
    title_from,
)
from mixchat.store.migrations import MIGRATIONS, migrate
from mixchat.store.models import Base
from postgres_fixtures import postgres_server, running_postgres  # noqa: F401  (a fixture)

SETTINGS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 64}


def new_chat(store: ConversationStore, owner: str = "alice", **fields: object) -> str:
    values: dict = {"backend": "echo", "model": "echo", "settings": SETTINGS} | fields
    return store.create(owner, **values).id


def test_public_names() -> None:
    assert set(mixchat.store.__all__) == {
        "LOCAL_OWNER",
        "ROLES",
        "STATUSES",
        "Conversation",
        "ConversationStore",
        "ConversationSummary",
        "MessageRecord",
        "NotFound",
        "StoreError",
        "UsageTotal",
        "title_from",
    }
    assert issubclass(NotFound, StoreError)
    assert issubclass(StoreError, mixchat.MixchatError)


def test_the_store_needs_no_ui_or_postgres_driver() -> None:
    code = (
        "import sys, mixchat.store; "
        "print(sorted(m for m in ('panel', 'rich', 'psycopg') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_create_then_get(store: ConversationStore) -> None:
    created = store.create(
        "alice",
        title="Plans",
        backend="llamacpp",
        model="m.gguf",
        settings=SETTINGS,
        system_prompt="Be brief.",
    )
    got = store.get("alice", created.id)
    assert (got.id, got.owner, got.title, got.backend, got.model) == (
        created.id,
        "alice",
        "Plans",
        "llamacpp",
        "m.gguf",
    )
    assert got.settings == SETTINGS and got.system_prompt == "Be brief."
    assert got.messages == []
    assert got.created_at.tzinfo is not None and got.created_at == created.created_at


def test_ids_are_random_uuid4_hex(store: ConversationStore) -> None:
    ids = {new_chat(store) for _ in range(5)}
    assert len(ids) == 5
    for conversation_id in ids:
        assert len(conversation_id) == 32 and int(conversation_id, 16) >= 0
        assert conversation_id[12] == "4"  # the uuid version digit


def test_list_is_newest_first_and_follows_activity(store: ConversationStore) -> None:
    first, second = new_chat(store, title="first"), new_chat(store, title="second")
    assert [c.id for c in store.list("alice")] == [second, first]
    store.add_message("alice", first, "user", "back to the first one")
    listed = store.list("alice")
    assert [c.title for c in listed] == ["first", "second"]
    assert listed[0].backend == "echo" and listed[0].model == "echo"


def test_search_matches_titles_and_messages_literally(store: ConversationStore) -> None:
    pasta, cake = new_chat(store, title="Pasta recipe"), new_chat(store, title="Cake")
    store.add_message("alice", cake, "user", "How much SUGAR, 100% or 50_50?")
    assert [c.id for c in store.list("alice", search="pasta")] == [pasta]
    assert [c.id for c in store.list("alice", search="sugar")] == [cake]
    assert [c.id for c in store.list("alice", search="100%")] == [cake]
    assert [c.id for c in store.list("alice", search="%")] == [cake]  # literal, not a wildcard
    assert [c.id for c in store.list("alice", search="0_5")] == [cake]
    assert store.list("alice", search="1_0") == []
    assert len(store.list("alice", search="  ")) == 2


def test_a_reply_is_saved_when_sent_and_when_it_ends(store: ConversationStore) -> None:
    chat = new_chat(store)
    question = store.add_message("alice", chat, "user", "Tell me a story")
    reply = store.add_message("alice", chat, "assistant", "", status="stopped")
    stats = Stats(Outcome.CANCELLED, completion_tokens=3, tokens_per_second=12.5, duration=0.24)
    store.update_message("alice", reply, content="Once upon a", status="stopped", stats=stats)
    steps = [Step(1, tool="web_search", input="search", output="...", ok=True, duration=0.5)]
    failed = store.add_message(
        "alice",
        chat,
        "assistant",
        "Partial",
        status="error",
        stats=Stats(Outcome.ERROR, error="server went away"),
        steps=steps,
    )
    messages = store.get("alice", chat).messages
    assert [m.id for m in messages] == [question, reply, failed]
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "Tell me a story", "complete"),
        ("assistant", "Once upon a", "stopped"),
        ("assistant", "Partial", "error"),
    ]
    assert messages[1].stats == stats and messages[1].steps is None
    assert messages[2].steps == steps


def test_update_message_keeps_fields_not_given(store: ConversationStore) -> None:
    chat = new_chat(store)
    reply = store.add_message(
        "alice",
        chat,
        "assistant",
        "Hel",
        status="stopped",
        stats=Stats(Outcome.CANCELLED, completion_tokens=1),
        steps=[Step(1, error="not JSON", raw="hmm")],
    )
    store.update_message("alice", reply, content="Hello")
    (message,) = store.get("alice", chat).messages
    assert (message.content, message.status, message.stats, message.steps) == (
        "Hello",
        "stopped",
        Stats(Outcome.CANCELLED, completion_tokens=1),
        [Step(1, error="not JSON", raw="hmm")],
    )


def test_bad_role_or_status_is_refused(store: ConversationStore) -> None:
    chat = new_chat(store)
    with pytest.raises(ValueError, match="role"):
        store.add_message("alice", chat, "robot", "hi")
    with pytest.raises(ValueError, match="status"):
        store.add_message("alice", chat, "user", "hi", status="done")
    assert store.get("alice", chat).messages == []


def test_delete_messages_from_removes_that_one_and_later(store: ConversationStore) -> None:
    chat = new_chat(store)
    ids = [
        store.add_message("alice", chat, role, f"m{i}")
        for i, role in enumerate(["user", "assistant", "user", "assistant"])
    ]
    store.delete_messages_from("alice", chat, ids[2])
    assert [m.content for m in store.get("alice", chat).messages] == ["m0", "m1"]
    other = new_chat(store)
    with pytest.raises(NotFound):
        store.delete_messages_from("alice", other, ids[0])  # not a message of that conversation
    assert len(store.get("alice", chat).messages) == 2


def test_rename_and_update_settings(store: ConversationStore) -> None:
    chat = new_chat(store)
    before = store.get("alice", chat).updated_at
    store.rename("alice", chat, "  A   better\ntitle ")
    store.update_settings(
        "alice",
        chat,
        model="other",
        settings={"temperature": 0.0},
        system_prompt="Answer in French.",
    )
    got = store.get("alice", chat)
    assert (got.title, got.backend, got.model, got.settings, got.system_prompt) == (
        "A better title",
        "echo",
        "other",
        {"temperature": 0.0},
        "Answer in French.",
    )
    assert got.updated_at > before


def test_delete_removes_the_conversation_and_its_messages(
    store: ConversationStore, store_url: str
) -> None:
    chat, kept = new_chat(store), new_chat(store)
    store.add_message("alice", chat, "user", "bye")
    store.add_message("alice", kept, "user", "stay")
    store.delete("alice", chat)
    with pytest.raises(NotFound):
        store.get("alice", chat)
    assert [c.id for c in store.list("alice")] == [kept]
    with store.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM messages")) == 1


def test_owners_never_see_each_others_conversations(store: ConversationStore) -> None:
    chat = new_chat(store, owner="alice", title="secret")
    message = store.add_message("alice", chat, "user", "my secret")
    attempts = [
        lambda: store.get("bob", chat),
        lambda: store.rename("bob", chat, "mine now"),
        lambda: store.delete("bob", chat),
        lambda: store.add_message("bob", chat, "user", "hi"),
        lambda: store.update_message("bob", message, content="changed"),
        lambda: store.delete_messages_from("bob", chat, message),
        lambda: store.update_settings("bob", chat, system_prompt="evil"),
        lambda: store.export_json("bob", chat),
        lambda: store.resolve_id("bob", chat[:6]),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert store.list("bob") == [] and store.list("bob", search="secret") == []
    got = store.get("alice", chat)
    assert (got.title, got.system_prompt, [m.content for m in got.messages]) == (
        "secret",
        "",
        ["my secret"],
    )


def test_missing_ids_are_not_found(store: ConversationStore) -> None:
    with pytest.raises(NotFound, match="no conversation"):
        store.get("alice", "0" * 32)
    with pytest.raises(NotFound, match="no message"):
        store.update_message("alice", 123456, content="x")


def test_resolve_id_from_a_prefix(store: ConversationStore) -> None:
    chat = new_chat(store)
    assert store.resolve_id("alice", chat[:8].upper()) == chat
    for bad in ["", "zz", "'; drop table", "f" * 33]:
        with pytest.raises(NotFound):
            store.resolve_id("alice", bad)


def test_export_then_import_round_trips_exactly(store: ConversationStore) -> None:
    chat = new_chat(store, title="Round trip", system_prompt="Be kind.")
    store.add_message("alice", chat, "user", 'Hi ✓ "quoted"\nsecond line')
    reply = store.add_message("alice", chat, "assistant", "")
    store.update_message(
        "alice",
        reply,
        content="Partial",
        status="stopped",
        stats=Stats(Outcome.CANCELLED, completion_tokens=2, tokens_per_second=3.5),
    )
    store.add_message(
        "alice",
        chat,
        "assistant",
        "Oops",
        status="error",
        steps=[Step(1, tool="Calculator", input="2+2", output="4", ok=True, duration=0.1)],
    )
    exported = store.export_json("alice", chat)
    document = json.loads(json.dumps(exported))  # what a file holds
    copy = store.import_json("bob", document)
    assert copy != chat
    again = store.export_json("bob", copy)
    assert again | {"id": chat} == exported
    assert [m["status"] for m in again["messages"]] == ["complete", "stopped", "error"]
    assert store.get("bob", copy).owner == "bob"


def test_what_older_versions_stored_reads_as_typed_stats_and_steps(
    store: ConversationStore,
) -> None:
    """Exports written before the one vocabulary (``finish_reason``, ``step``, extra keys)."""
    document = store.export_json("alice", new_chat(store))
    document["messages"] = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "4",
            "status": "complete",
            "stats": {"finish_reason": "length", "completion_tokens": 5, "error_type": None},
            "steps": [
                {"step": 2, "tool": "Calculator", "input": "2+2", "output": "4", "ok": True},
                "not a step",
            ],
        },
        {"role": "assistant", "content": "", "status": "stopped", "stats": {"duration": 1}},
    ]
    messages = store.get("alice", store.import_json("alice", document)).messages
    assert messages[1].stats == Stats(Outcome.LENGTH, completion_tokens=5)
    assert messages[1].steps == [Step(2, tool="Calculator", input="2+2", output="4", ok=True)]
    assert messages[2].stats == Stats(Outcome.CANCELLED, duration=1)


@pytest.mark.parametrize(
    "data, problem",
    [
        ([1, 2], "not a mixchat conversation export"),
        ({"hello": "world"}, "not a mixchat conversation export"),
        ({"format": "mixchat.conversation", "version": 99}, "version 99"),
        ({"format": "mixchat.conversation", "version": 1, "title": "t"}, "created_at"),
    ],
)
def test_import_refuses_files_not_ours(
    store: ConversationStore, data: object, problem: str
) -> None:
    with pytest.raises(StoreError, match=problem):
        store.import_json("alice", data)
    assert store.list("alice") == []


def test_import_refuses_a_bad_message(store: ConversationStore) -> None:
    document = store.export_json("alice", new_chat(store))
    document["messages"] = [{"role": "user", "content": "ok"}, {"role": "wizard", "content": "x"}]
    with pytest.raises(StoreError, match=r"messages\.1\.role"):
        store.import_json("alice", document)
    assert len(store.list("alice")) == 1


def test_markdown_export(store: ConversationStore) -> None:
    chat = new_chat(store, title="Cooking", system_prompt="You are a chef.")
    store.add_message("alice", chat, "user", "Pasta?")
    store.add_message(
        "alice",
        chat,
        "assistant",
        "Boil water",
        status="stopped",
        stats=Stats(Outcome.CANCELLED, completion_tokens=2, tokens_per_second=10.0),
    )
    markdown = store.export_markdown("alice", chat)
    assert markdown.startswith("# Cooking\n")
    assert "*echo · echo · " in markdown
    assert "## System\n\nYou are a chef.\n" in markdown
    assert markdown.index("## User\n\nPasta?") < markdown.index("## Assistant\n\nBoil water")
    assert "_stopped · 2 tokens · 10.0 tokens/s_" in markdown


def test_threads_share_one_store(store: ConversationStore) -> None:
    """The web app calls the store from worker threads (asyncio.to_thread), several at once."""
    chat = new_chat(store)

    def write(name: str) -> list[int]:
        return [store.add_message("alice", chat, "user", f"{name}{i}") for i in range(15)]

    with ThreadPoolExecutor(4) as pool:
        ids = [i for batch in pool.map(write, "abcd") for i in batch]
    messages = store.get("alice", chat).messages
    assert sorted(m.id for m in messages) == sorted(ids) and len(set(ids)) == 60
    assert {m.content for m in messages} == {f"{n}{i}" for n in "abcd" for i in range(15)}


def test_data_survives_reopening(store_url: str) -> None:
    with ConversationStore(store_url) as first:
        chat = new_chat(first)
        first.add_message("alice", chat, "user", "remember me")
    with ConversationStore(store_url) as second:
        assert [m.content for m in second.get("alice", chat).messages] == ["remember me"]


def test_migrated_schema_matches_the_models(store: ConversationStore) -> None:
    inspector = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}, table.name
    indexes = {i["name"] for i in inspector.get_indexes("conversations")}
    assert "ix_conversations_owner_updated" in indexes


def test_an_old_database_upgrades_on_open(store_url: str) -> None:
    engine = create_engine(store_url)
    if store_url.startswith("sqlite"):
        Path(engine.url.database).parent.mkdir(parents=True)
    first = MIGRATIONS[0][0]
    assert migrate(engine, until=first) == [first]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at, backend, model,"
                " settings, system_prompt) VALUES (:id, 'alice', 'Old', :now, :now, 'echo',"
                " NULL, '{}', '')"
            ),
            {"id": "ab" + "0" * 30, "now": "2024-01-02 03:04:05"},
        )
        assert "ix_conversations_owner_updated" not in {
            i["name"] for i in inspect(connection).get_indexes("conversations")
        }
    engine.dispose()
    with ConversationStore(store_url) as store:
        with store.engine.connect() as connection:
            names = list(connection.scalars(text("SELECT name FROM mixchat_migrations")))
            indexes = {i["name"] for i in inspect(connection).get_indexes("conversations")}
        assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
        assert "ix_conversations_owner_updated" in indexes
        old = store.get("alice", "ab" + "0" * 30)
        assert (old.title, old.created_at.year) == ("Old", 2024)
        assert old.created_at.tzinfo is not None
        store.add_message("alice", old.id, "user", "still works")
        assert migrate(store.engine) == []


def test_processes_starting_at_once_migrate_once(store_url: str) -> None:
    def open_and_count(_: int) -> int:
        with ConversationStore(store_url) as store, store.engine.connect() as connection:
            return connection.scalar(text("SELECT count(*) FROM mixchat_migrations"))

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(open_and_count, range(4)))
    assert counts == [len(MIGRATIONS)] * 4


def test_a_database_from_a_newer_mixchat_is_refused(store_url: str) -> None:
    ConversationStore(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO mixchat_migrations (name) VALUES ('m999_future')"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer mixchat.*m999_future"):
        ConversationStore(store_url)


def test_title_from() -> None:
    assert title_from("  What is   the capital\nof France?") == "What is the capital"
    assert title_from("") == "New chat"
    long = title_from("word " * 40)
    assert len(long) <= 60 and long.endswith("…") and "  " not in long


def test_a_title_is_the_text_a_reader_sees_not_its_markdown() -> None:
    assert title_from("hello **there**, see [the docs](http://x.org) and `a()`") == (
        "hello there, see the docs and a()"
    )
    assert title_from("# Plan for *today*\n\n- first") == "Plan for today"
    assert title_from("> quoted _words_\nnext line") == "quoted words"
    assert title_from("```python\nprint(1)\n```\nWhy?") == "print(1)"
    assert title_from("<b>bold</b> text") == "<b>bold</b> text"  # tags stay text
    assert title_from("**   **\nreal line") == "real line"  # a rule (`* *`) is no text


# -- SQLite: sharing one file, surviving crashes, and files that are not ours


def test_sqlite_is_shared_safely(tmp_path: Path) -> None:
    with (
        ConversationStore(f"sqlite:///{tmp_path / 'm.db'}") as store,
        store.engine.connect() as connection,
    ):
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000}


def test_default_database_lives_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIXCHAT_DATABASE_URL", raising=False)
    monkeypatch.setenv("MIXCHAT_CONFIG", str(tmp_path / "absent.toml"))
    settings = load_settings(data_dir=tmp_path / "new" / "dir")
    with ConversationStore.from_settings(settings) as store:
        new_chat(store)
    assert (tmp_path / "new" / "dir" / "mixchat.db").stat().st_size > 0


WRITER = textwrap.dedent("""
    import sys
    from mixchat.store import ConversationStore
    from mixchat.outcome import Stats
    store = ConversationStore(sys.argv[1])
    chat, name, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
    for i in range(count):
        reply = store.add_message("alice", chat, "assistant", "", status="stopped")
        store.update_message("alice", reply, content=f"{name} {i} " * 50, status="complete",
                             stats=Stats("stop", completion_tokens=i))
        print(reply, i, flush=True)
""")


def start_writer(url: str, chat: str, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, chat, name, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    with ConversationStore(url) as store:
        chat = new_chat(store)
    writer = start_writer(url, chat, "w", 100_000)
    assert writer.stdout is not None
    reported = [writer.stdout.readline() for _ in range(40)]  # the writer is going on meanwhile
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    reported += writer.stdout.readlines()  # committed before the kill, still in the pipe
    committed = dict(tuple(map(int, line.split())) for line in reported if line.strip())
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with ConversationStore(url) as store:
        messages = {m.id: m for m in store.get("alice", chat).messages}
    for message_id, index in committed.items():
        message = messages.pop(message_id)
        assert (message.content, message.status, message.stats) == (
            f"w {index} " * 50,
            "complete",
            Stats(Outcome.STOP, completion_tokens=index),
        )
    # At most the one being written when killed: saved as sent, or saved whole.
    assert len(messages) <= 1
    for message in messages.values():
        assert (message.content, message.status) in [
            ("", "stopped"),
            (f"w {len(committed)} " * 50, "complete"),
        ]


def test_two_processes_write_one_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with ConversationStore(url) as store:
        chat = new_chat(store)
    writers = [start_writer(url, chat, name, 60) for name in ("a", "b")]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    with ConversationStore(url) as store:
        contents = sorted(m.content for m in store.get("alice", chat).messages)
    assert contents == sorted(f"{n} {i} " * 50 for n in ("a", "b") for i in range(60))


def test_a_corrupt_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "mixchat.db"
    garbage = b"this is not a database, just some bytes\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as raised:
        ConversationStore(f"sqlite:///{path}")
    message = str(raised.value)
    assert str(path) in message and "not a database" in message and "move it aside" in message
    assert "\n" not in message
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixchat.db"]


@pytest.mark.parametrize("where", ["under_a_file", "is_a_directory"])
def test_an_unwritable_path_is_reported(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    path = tmp_path / "file" / "sub" / "mixchat.db" if where == "under_a_file" else tmp_path / "dir"
    with pytest.raises(StoreError, match="cannot"):
        ConversationStore(f"sqlite:///{path}")
    assert (tmp_path / "file").read_text() == "x"
    assert list((tmp_path / "dir").iterdir()) == []


# -- PostgreSQL


def test_a_server_that_is_down_is_reported_quickly() -> None:
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        ConversationStore(f"postgresql://mixchat:hunter2@127.0.0.1:{port}/chats", connect_timeout=2)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"127.0.0.1:{port}/chats" in message and "server is running" in message
    assert "hunter2" not in message


def test_a_server_that_goes_down_is_reported_then_used_again() -> None:
    with running_postgres() as server, ConversationStore(server.new_database()) as store:
        chat = new_chat(store)
        server.stop()
        with pytest.raises(StoreError) as raised:
            store.add_message("alice", chat, "user", "lost?")
        assert str(raised.value).startswith("database error saving a message (postgresql")
        server.start()
        store.add_message("alice", chat, "user", "back")
        assert [m.content for m in store.get("alice", chat).messages] == ["back"]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("not a url", "invalid database URL"),
        ("mysql://root:pw@localhost/chats", "unsupported database"),
    ],
)
def test_a_bad_url_is_reported(url: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem) as raised:
        ConversationStore(url)
    assert "pw@" not in str(raised.value)


def test_a_page_reads_which_replies_have_a_prompt_and_one_prompt_when_asked(
    store: ConversationStore,
) -> None:
    """Each recorded prompt is as long as the conversation before it: opening a conversation
    for a page reads none of them (only which replies have one); inspecting reads one."""
    chat = new_chat(store)
    asked = store.add_message("alice", chat, "user", "hi")
    prompt = {"messages": [{"role": "user", "content": "hi"}], "token_count": 3}
    answered = store.add_message("alice", chat, "assistant", "hello", prompt=prompt)
    store.add_message("alice", chat, "user", "and?")
    light = {m.id: m for m in store.get("alice", chat, prompts=False).messages}
    assert [light[asked].has_prompt, light[answered].has_prompt] == [False, True]
    assert all(m.prompt is None for m in light.values())
    assert store.prompt("alice", answered) == prompt and store.prompt("alice", asked) is None
    with pytest.raises(NotFound):
        store.prompt("bob", answered)  # not bob's: as if it did not exist
    whole = {m.id: m for m in store.get("alice", chat).messages}  # the CLI's and exports'
    assert whole[answered].prompt == prompt and whole[answered].has_prompt
    store.delete_messages_from("alice", chat, asked)  # reads the tree without prompts
    assert store.get("alice", chat).messages == []
