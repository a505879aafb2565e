"""The schema's history: append-only migrations, recorded in a table, run in one place.

``migrate(engine)`` runs when a store opens and applies, in order, every migration the
database has not recorded in ``mixchat_migrations``. Never edit or reorder a migration
that has shipped; add a new one at the end. A migration sees only a Connection and
spells out its own tables, so it keeps working when ``models.py`` changes.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
)

from mixchat.store.database import WRITE
from mixchat.store.errors import StoreError

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []

_record_metadata = MetaData()
migrations_table = Table(
    "mixchat_migrations",
    _record_metadata,
    Column("name", String(200), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Any constant: serializes concurrent first starts on PostgreSQL.
_PG_LOCK_KEY = 0x6D69786368


def migration(function: Migration) -> Migration:
    """Append ``function`` to the history, under its name."""
    MIGRATIONS.append((function.__name__, function))
    return function


@migration
def m001_conversations_and_messages(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "conversations",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("owner", String(200), nullable=False),
        Column("title", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("backend", String(100), nullable=False),
        Column("model", Text),
        Column("settings", JSON, nullable=False),
        Column("system_prompt", Text, nullable=False),
    )
    Table(
        "messages",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "conversation_id",
            String(32),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("role", String(20), nullable=False),
        Column("content", Text, nullable=False),
        Column("status", String(20), nullable=False),
        Column("stats", JSON),
        Column("steps", JSON),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(connection)


@migration
def m002_listing_indexes(connection: Connection) -> None:
    """The sidebar lists one owner's conversations newest first; a reload reads one conversation."""
    connection.execute(
        text("CREATE INDEX ix_conversations_owner_updated ON conversations (owner, updated_at)")
    )
    connection.execute(
        text("CREATE INDEX ix_messages_conversation ON messages (conversation_id, id)")
    )


@migration
def m003_api_keys(connection: Connection) -> None:
    """Keys of the OpenAI-compatible API: only a hash is kept, the key is shown once."""
    metadata = MetaData()
    Table(
        "api_keys",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("owner", String(200), nullable=False),
        Column("hash", String(64), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True)),
    )
    metadata.create_all(connection)


@migration
def m004_usage(connection: Connection) -> None:
    """Tokens in and out per request, per user and model: limits per day, `mixchat usage`."""
    metadata = MetaData()
    Table(
        "usage",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("owner", String(200), nullable=False),
        Column("model", String(200), nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(connection)
    connection.execute(text("CREATE INDEX ix_usage_owner_created ON usage (owner, created_at)"))


@migration
def m005_message_tree(connection: Connection) -> None:
    """Messages form a tree: a parent per message, the branch last used per conversation.

    Every existing message keeps its place: its parent is the message before it in its
    conversation, and each conversation's current branch ends at its last message. A
    reply being written has a heartbeat (``updated_at``) so a crash shows as interrupted;
    ``prompt`` keeps what the model received for a reply (the prompt inspector).
    """
    timestamp = (
        "TIMESTAMP WITH TIME ZONE" if connection.dialect.name == "postgresql" else "DATETIME"
    )
    for statement in (
        "ALTER TABLE messages ADD COLUMN parent_id INTEGER",
        f"ALTER TABLE messages ADD COLUMN updated_at {timestamp}",
        "ALTER TABLE messages ADD COLUMN prompt JSON",
        "ALTER TABLE conversations ADD COLUMN leaf_id INTEGER",
        "CREATE INDEX ix_messages_parent ON messages (parent_id)",
        "UPDATE messages SET parent_id = (SELECT MAX(earlier.id) FROM messages earlier"
        " WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)",
        "UPDATE conversations SET leaf_id = (SELECT MAX(messages.id) FROM messages"
        " WHERE messages.conversation_id = conversations.id)",
    ):
        connection.execute(text(statement))


@migration
def m006_presets(connection: Connection) -> None:
    """Users' presets (a system prompt, a catalog model, sampling), one name per owner."""
    metadata = MetaData()
    Table(
        "presets",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("owner", String(200), nullable=False),
        Column("name", String(40), nullable=False),
        Column("data", JSON, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("owner", "name", name="uq_presets_owner_name"),
    )
    metadata.create_all(connection)


def applied(connection: Connection) -> list[str]:
    """Names of the migrations this database has recorded (none for a new database)."""
    _record_metadata.create_all(connection, checkfirst=True)
    return list(connection.scalars(select(migrations_table.c.name)))


def migrate(engine: Engine, *, until: str | None = None) -> list[str]:
    """Apply the pending migrations (up to and including ``until``) in one transaction.

    Returns the names applied. A database recording a migration this code does not know
    was written by a newer mixchat and is left alone.
    """
    known = [name for name, _ in MIGRATIONS]
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        done = set(applied(connection))
        if done - set(known):
            raise StoreError(
                f"the database was written by a newer mixchat (unknown migrations: "
                f"{', '.join(sorted(done - set(known)))}): upgrade mixchat"
            )
        ran = []
        for name, function in MIGRATIONS:
            if name not in done:
                function(connection)
                connection.execute(insert(migrations_table).values(name=name))
                ran.append(name)
            if name == until:
                break
        return ran
