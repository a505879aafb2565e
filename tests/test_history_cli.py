"""``mixchat history``, driven through typer's CliRunner against a temporary SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mixchat.cli.history import history_app
from mixchat.outcome import Outcome, Stats
from mixchat.store import LOCAL_OWNER, ConversationStore

runner = CliRunner()


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    monkeypatch.setenv("MIXCHAT_DATABASE_URL", url)
    monkeypatch.setenv("MIXCHAT_CONFIG", str(tmp_path / "absent.toml"))
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[ConversationStore]:
    with ConversationStore(db_url) as opened:
        yield opened


@pytest.fixture
def chat(store: ConversationStore) -> str:
    created = store.create(
        LOCAL_OWNER,
        title="Capital cities",
        backend="echo",
        model="echo",
        settings={"temperature": 0.1},
        system_prompt="Answer briefly.",
    )
    store.add_message(LOCAL_OWNER, created.id, "user", "Capital of France?")
    store.add_message(
        LOCAL_OWNER,
        created.id,
        "assistant",
        "Paris",
        status="stopped",
        stats=Stats(Outcome.CANCELLED, completion_tokens=1, tokens_per_second=4.0),
    )
    return created.id


def invoke(*args: str, input: str | None = None) -> Result:
    return runner.invoke(history_app, list(args), input=input)


def assert_one_line_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("mixchat: error: ") and "\n" not in line, line
    for part in parts:
        assert part in line, line


def test_list_is_empty_at_first(db_url: str) -> None:
    result = invoke("list")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no conversations yet" in result.stderr


def test_list_newest_first_and_search(store: ConversationStore, chat: str) -> None:
    newer = store.create(LOCAL_OWNER, title="Shopping", backend="llamacpp", model=None, settings={})
    store.create("alice", title="Not the local user's", backend="echo", model=None, settings={})
    lines = invoke("list").stdout.splitlines()
    assert [line.split()[0] for line in lines] == [newer.id, chat]
    assert lines[0].endswith("llamacpp  Shopping")
    assert lines[1].endswith("echo/echo  Capital cities")
    assert invoke("list", "--search", "paris").stdout.split()[0] == chat


def test_export_prints_the_conversation_as_markdown(chat: str) -> None:
    result = invoke("export", chat[:6], "--format", "md")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Capital cities\n")
    for expected in [
        "## System\n\nAnswer briefly.",
        "## User\n\nCapital of France?",
        "## Assistant\n\nParis",
        "_stopped · 1 token · 4.0 tokens/s_",
    ]:
        assert expected in result.stdout


def test_show_prints_the_messages(chat: str) -> None:
    result = invoke("show", chat)
    assert result.exit_code == 0, result.output
    assert "Capital cities" in result.stdout and "Capital of France?" in result.stdout
    assert "Paris" in result.stdout


def test_export_json_then_import_round_trips(
    store: ConversationStore, chat: str, tmp_path: Path
) -> None:
    exported = tmp_path / "chat.json"
    result = invoke("export", chat, "--format", "json", "--output", str(exported))
    assert result.exit_code == 0, result.output
    assert json.loads(exported.read_text()) == store.export_json(LOCAL_OWNER, chat)
    result = invoke("import", str(exported))
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    assert new_id != chat
    original = store.export_json(LOCAL_OWNER, chat)
    assert store.export_json(LOCAL_OWNER, new_id) | {"id": chat} == original


@pytest.mark.parametrize(
    "content, problem",
    [
        ("not json at all", "not a JSON file"),
        ('{"messages": []}', "not a mixchat conversation export"),
        (
            json.dumps(
                {
                    "format": "mixchat.conversation",
                    "version": 1,
                    "title": "t",
                    "created_at": "2024-01-01T00:00:00+00:00",
                    "updated_at": "yesterday",
                    "backend": "echo",
                    "messages": [],
                }
            ),
            "updated_at",
        ),
    ],
)
def test_import_refuses_files_not_ours(
    store: ConversationStore, tmp_path: Path, content: str, problem: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert_one_line_error(invoke("import", str(bad)), f"cannot import {bad}", problem)
    assert store.list(LOCAL_OWNER) == []


def test_import_a_missing_file(db_url: str, tmp_path: Path) -> None:
    assert_one_line_error(invoke("import", str(tmp_path / "nope.json")), "cannot read", "nope.json")


def test_delete_asks_first(store: ConversationStore, chat: str) -> None:
    refused = invoke("delete", chat, input="n\n")
    assert refused.exit_code == 1 and "nothing deleted" in refused.stderr
    assert store.get(LOCAL_OWNER, chat).title == "Capital cities"
    assert invoke("delete", chat, input="y\n").exit_code == 0
    assert store.list(LOCAL_OWNER) == []


def test_delete_yes(store: ConversationStore, chat: str) -> None:
    result = invoke("delete", chat, "--yes")
    assert result.exit_code == 0 and f"deleted {chat}" in result.stderr
    assert_one_line_error(invoke("show", chat), "no conversation")


def test_another_owners_conversation_is_not_found(store: ConversationStore) -> None:
    theirs = store.create("alice", backend="echo", model=None, settings={}).id
    for command in (["show", theirs], ["export", theirs], ["delete", theirs, "--yes"]):
        assert_one_line_error(invoke(*command), "no conversation")
    assert store.get("alice", theirs).id == theirs


def test_a_corrupt_database_is_one_line_and_untouched(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"garbage" * 1000)
    assert_one_line_error(invoke("list"), str(path), "not a database")
    assert path.read_bytes() == b"garbage" * 1000


def test_a_bad_database_url_is_one_line(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("MIXCHAT_DATABASE_URL", "postgresql://me:s3cret@127.0.0.1:1/chats")
    result = invoke("list")
    assert_one_line_error(result, "127.0.0.1:1/chats")
    assert "s3cret" not in result.stderr
