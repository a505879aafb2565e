"""Conversations as trees: edits and regenerated replies are branches, and nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mixchat.store import ConversationStore, NotFound, StoreError
from mixchat.store.migrations import MIGRATIONS, migrate
from postgres_fixtures import postgres_server, running_postgres  # noqa: F401  (a fixture)

TREE_MIGRATION = "m005_message_tree"


def contents(messages: list) -> list[str]:
    return [m.content for m in messages]


def branched(store: ConversationStore) -> tuple[str, dict[str, int]]:
    """hi → hello; then 'hi' edited to 'hey' → 'hey there', then that reply regenerated."""
    chat = store.create("alice", backend="echo", model=None, settings={}).id
    ids = {"hi": store.add_message("alice", chat, "user", "hi")}
    ids["hello"] = store.add_message("alice", chat, "assistant", "hello")
    ids["more"] = store.add_message("alice", chat, "user", "more")
    ids["hey"] = store.add_message("alice", chat, "user", "hey", parent=None)
    ids["hey there"] = store.add_message("alice", chat, "assistant", "hey there")
    ids["hey again"] = store.add_message("alice", chat, "assistant", "hey again", parent=ids["hey"])
    return chat, ids


def test_an_edit_and_a_regenerated_reply_are_branches_and_keep_the_old_ones(
    store: ConversationStore,
) -> None:
    chat, ids = branched(store)
    conversation = store.get("alice", chat)
    assert contents(conversation.messages) == ["hey", "hey again"]
    assert contents(store.branch_path("alice", chat)) == ["hey", "hey again"]
    assert len(conversation.tree) == 6
    assert contents(conversation.siblings(ids["hi"])) == ["hi", "hey"]
    assert contents(conversation.siblings(ids["hey again"])) == ["hey there", "hey again"]
    assert contents(conversation.children(ids["hi"])) == ["hello"]


def test_select_branch_follows_the_newest_replies_and_is_remembered(store_url: str) -> None:
    with ConversationStore(store_url) as store:
        chat, ids = branched(store)
        assert contents(store.select_branch("alice", chat, ids["hi"])) == ["hi", "hello", "more"]
        with pytest.raises(NotFound):
            store.select_branch("bob", chat, ids["hi"])
        other = store.create("alice", backend="echo", model=None, settings={}).id
        with pytest.raises(NotFound):
            store.select_branch("alice", other, ids["hi"])
    with ConversationStore(store_url) as reopened:  # the branch last used opens
        assert contents(reopened.get("alice", chat).messages) == ["hi", "hello", "more"]
        reopened.add_message("alice", chat, "assistant", "sure")
        assert contents(reopened.get("alice", chat).messages) == ["hi", "hello", "more", "sure"]


def test_a_parent_from_another_conversation_is_refused(store: ConversationStore) -> None:
    chat, ids = branched(store)
    other = store.create("alice", backend="echo", model=None, settings={}).id
    with pytest.raises(NotFound):
        store.add_message("alice", other, "user", "x", parent=ids["hi"])


def test_undo_removes_a_branch_and_leaves_the_others(store: ConversationStore) -> None:
    chat, ids = branched(store)
    store.delete_messages_from("alice", chat, ids["hey"])
    conversation = store.get("alice", chat)
    assert contents(conversation.tree) == ["hi", "hello", "more"]
    assert contents(conversation.messages) == ["hi", "hello", "more"]
    store.delete_messages_from("alice", chat, ids["hi"])
    assert store.get("alice", chat).messages == []


def test_undo_of_one_version_ends_the_branch_where_the_screen_does(
    store: ConversationStore,
) -> None:
    """Undo the newer of two versions of a message: the conversation ends at their parent
    (what the page shows), the other version stays, and the next message joins it."""
    chat, ids = branched(store)
    store.select_branch("alice", chat, ids["hey again"])
    store.delete_messages_from("alice", chat, ids["hey again"])
    conversation = store.get("alice", chat)
    assert contents(conversation.messages) == ["hey"]
    assert "hey there" in contents(conversation.tree)
    store.add_message("alice", chat, "assistant", "hey anew")
    conversation = store.get("alice", chat)
    assert contents(conversation.messages) == ["hey", "hey anew"]
    assert contents(conversation.siblings(conversation.messages[-1].id)) == [
        "hey there",
        "hey anew",
    ]


def test_export_and_import_carry_every_branch(store: ConversationStore) -> None:
    chat, ids = branched(store)
    store.select_branch("alice", chat, ids["hey there"])
    document = json.loads(json.dumps(store.export_json("alice", chat)))
    assert document["version"] == 2
    assert len(document["messages"]) == 6
    copy = store.import_json("bob", document)
    imported = store.get("bob", copy)
    assert contents(imported.tree) == contents(store.get("alice", chat).tree)
    assert contents(imported.messages) == ["hey", "hey there"]
    assert store.export_json("bob", copy) | {"id": chat} == document
    markdown = store.export_markdown("alice", chat)
    assert "hey there" in markdown and "hey again" not in markdown and "hello" not in markdown


def test_a_version_1_export_imports_as_one_branch(store: ConversationStore) -> None:
    document = {
        "format": "mixchat.conversation",
        "version": 1,
        "title": "Old",
        "created_at": "2024-01-02T03:04:05+00:00",
        "updated_at": "2024-01-02T03:04:05+00:00",
        "backend": "echo",
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ],
    }
    copy = store.get("alice", store.import_json("alice", document))
    assert contents(copy.messages) == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("messages", "current", "problem"),
    [
        ([{"id": 1, "parent": 2}, {"id": 2, "parent": None}], None, "not an earlier message"),
        ([{"id": 1, "parent": None}, {"id": 1, "parent": None}], None, "missing or repeated"),
        ([{"id": 1, "parent": None}], 7, "current"),
    ],
)
def test_an_export_whose_tree_is_broken_is_refused(
    store: ConversationStore, messages: list, current: int | None, problem: str
) -> None:
    document = {
        "format": "mixchat.conversation",
        "version": 2,
        "title": "Bad",
        "created_at": "2024-01-02T03:04:05+00:00",
        "updated_at": "2024-01-02T03:04:05+00:00",
        "backend": "echo",
        "current": current,
        "messages": [m | {"role": "user", "content": "x"} for m in messages],
    }
    with pytest.raises(StoreError, match=problem):
        store.import_json("alice", document)


def test_a_database_of_the_linear_schema_opens_keeps_every_message_and_gains_branches(
    store_url: str,
) -> None:
    """Build the database the schema before the tree made, fill it as it was filled, open it."""
    names = [name for name, _ in MIGRATIONS]
    before = names[names.index(TREE_MIGRATION) - 1]
    engine = create_engine(store_url)
    if store_url.startswith("sqlite"):
        Path(str(engine.url.database)).parent.mkdir(parents=True)
    assert TREE_MIGRATION not in migrate(engine, until=before)
    with engine.begin() as connection:
        for chat in ("a" * 32, "b" * 32, "c" * 32):
            connection.execute(
                text(
                    "INSERT INTO conversations (id, owner, title, created_at, updated_at, backend,"
                    " model, settings, system_prompt) VALUES (:id, 'alice', 'Old', :now, :now,"
                    " 'echo', NULL, '{}', '')"
                ),
                {"id": chat, "now": "2024-01-02 03:04:05"},
            )
        for number in range(8):  # interleaved, as two chats written at once would be
            chat, role = ("a" * 32 if number % 2 == 0 or number > 5 else "b" * 32), "user"
            connection.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, content, status, stats, steps,"
                    " created_at) VALUES (:chat, :role, :content, 'complete', NULL, NULL, :now)"
                ),
                {"chat": chat, "role": role, "content": f"m{number}", "now": "2024-01-02 03:04:05"},
            )
    engine.dispose()
    with ConversationStore(store_url) as store:
        first = store.get("alice", "a" * 32)
        assert contents(first.messages) == ["m0", "m2", "m4", "m6", "m7"]
        assert [m.parent_id for m in first.messages[1:]] == [m.id for m in first.messages[:-1]]
        assert contents(store.get("alice", "b" * 32).messages) == ["m1", "m3", "m5"]
        assert store.get("alice", "c" * 32).messages == []
        store.add_message("alice", "b" * 32, "user", "m1 edited", parent=None)
        store.add_message("alice", "b" * 32, "assistant", "new")
        second = store.get("alice", "b" * 32)
        assert contents(second.messages) == ["m1 edited", "new"]
        assert contents(second.siblings(second.messages[0].id)) == ["m1", "m1 edited"]
