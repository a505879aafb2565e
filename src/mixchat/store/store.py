"""ConversationStore: conversations and their messages, kept per owner, one commit per write.

Every method takes the owner and filters by it, so a user who guesses another user's
conversation id gets NotFound, exactly as for an id that does not exist. Each write is
its own transaction, committed before the method returns: a process killed at any moment
loses only the write it was in the middle of.

The API is synchronous (SQLAlchemy: the ORM for reads, Core statements for the writes of
every exchange); the web app calls it in worker threads.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import Connection, Table, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from mixchat.outcome import Outcome
from mixchat.store import export
from mixchat.store.database import WRITE, describe, open_engine, parse_url, reason, translated
from mixchat.store.errors import NotFound, StoreError
from mixchat.store.migrations import migrate
from mixchat.store.models import ConversationRow, MessageRow, UsageRow, utcnow
from mixchat.store.records import (
    ROLES,
    STATUSES,
    Conversation,
    ConversationSummary,
    MessageRecord,
    Role,
    Stats,
    Status,
    Step,
    UsageTotal,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from mixchat.config import Settings

DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 60
#: How much of the first message the title is read from.
TITLE_SOURCE = 2000
#: Markdown as the page renders it (no raw HTML: a tag stays text), for titles.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})
#: Seconds between saves of a streaming reply (its heartbeat: see ``progress.ReplyProgress``).
SAVE_EVERY = 2.0
#: A "streaming" reply not saved for this long (three missed saves) was being written by a
#: process that died. Read-time only: a slow writer's reply that looks interrupted for a
#: moment is streaming again at its next save, and is never rewritten as interrupted.
STALE_AFTER = timedelta(seconds=3 * SAVE_EVERY)
#: ``add_message(parent=CURRENT)``: answer the end of the conversation's current branch.
CURRENT: Literal["current"] = "current"

# The writes of every exchange, as Core statements built once: a message is written several
# times per exchange, and building the statement and the ORM's unit of work were ~75% of a
# write's CPU (3.1 ms down to 0.5 per message on SQLite). The SET and VALUES clauses come
# from each call's parameters.
_MESSAGES = cast(Table, MessageRow.__table__)
_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_OWNED_LEAF = (
    select(_CONVERSATIONS.c.leaf_id)
    .where(_CONVERSATIONS.c.id == bindparam("cid"), _CONVERSATIONS.c.owner == bindparam("who"))
    .with_for_update()  # two appends at once must not both answer the same leaf (PostgreSQL)
)
_MESSAGE_CONVERSATION = select(_MESSAGES.c.conversation_id).where(
    _MESSAGES.c.id == bindparam("mid")
)
_OWNED_MESSAGE = (
    select(_MESSAGES.c.conversation_id)
    .join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id)
    .where(_MESSAGES.c.id == bindparam("mid"), _CONVERSATIONS.c.owner == bindparam("who"))
)
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_UPDATE_MESSAGE = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("mid"))
_UPDATE_CONVERSATION = update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("cid"))
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
_INSERT_USAGE = insert(cast(Table, UsageRow.__table__))


def title_from(first_message: str) -> str:
    """A conversation title: the first text of its first message as a reader sees it (the
    Markdown's ``**``, ``#``, links and backticks gone; a leading code block gives its first
    line), shortened."""
    line = _first_text(first_message[:TITLE_SOURCE]) or first_message.strip().split("\n", 1)[0]
    title = " ".join(line.split())
    if len(title) > TITLE_LENGTH:
        title = title[: TITLE_LENGTH - 1].rsplit(" ", 1)[0].rstrip(" ,.;:") + "…"
    return title or DEFAULT_TITLE


def _first_text(markdown: str) -> str:
    for token in _MARKDOWN.parse(markdown):
        if token.type in ("fence", "code_block") and token.content.strip():
            return token.content.strip().split("\n", 1)[0]
        if token.type == "inline":
            line = "".join(_plain(child) for child in token.children or [])
            if line.strip():
                return line.split("\n", 1)[0]
    return ""


def _plain(token: Token) -> str:
    if token.type in ("text", "code_inline", "html_inline"):
        return token.content
    if token.type == "image":  # its alt text
        return "".join(_plain(child) for child in token.children or [])
    return "\n" if token.type in ("softbreak", "hardbreak") else ""


class ConversationStore:
    """Conversations in SQLite or PostgreSQL; the schema is created or upgraded on open."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = parse_url(url)
        self.engine = open_engine(self.url, connect_timeout=connect_timeout)
        try:
            migrate(self.engine)
        except StoreError:
            self.engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as error:  # an unreachable server, a corrupt file
            self.engine.dispose()
            raise StoreError(self._open_error(error)) from error

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationStore:
        return cls(settings.database, connect_timeout=settings.connect_timeout)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConversationStore({describe(self.url)!r})"

    # -- conversations

    def create(
        self,
        owner: str,
        *,
        title: str = DEFAULT_TITLE,
        backend: str,
        model: str | None,
        settings: dict[str, Any],
        system_prompt: str = "",
    ) -> Conversation:
        now = utcnow()
        row = ConversationRow(
            id=uuid.uuid4().hex,
            owner=owner,
            title=_clean_title(title),
            created_at=now,
            updated_at=now,
            backend=backend,
            model=model,
            settings=dict(settings),
            system_prompt=system_prompt,
            leaf_id=None,
        )
        with self._write_rows("creating a conversation") as connection:
            connection.execute(
                _INSERT_CONVERSATION,
                {column: getattr(row, column) for column in _CONVERSATIONS.c.keys()},
            )
        return _conversation(row, [], now)

    def list(self, owner: str, search: str | None = None) -> list[ConversationSummary]:
        """The owner's conversations, newest first; ``search`` matches titles and message text."""
        query = select(ConversationRow).where(ConversationRow.owner == owner)
        if search and search.strip():
            pattern = "%" + _escape_like(search.strip()) + "%"
            in_messages = exists().where(
                MessageRow.conversation_id == ConversationRow.id,
                MessageRow.content.ilike(pattern, escape="\\"),
            )
            query = query.where(or_(ConversationRow.title.ilike(pattern, escape="\\"), in_messages))
        query = query.order_by(ConversationRow.updated_at.desc(), ConversationRow.created_at.desc())
        with self._read("listing conversations") as session:
            return [_summary(row) for row in session.scalars(query)]

    def get(self, owner: str, conversation_id: str, *, prompts: bool = True) -> Conversation:
        """The conversation, every branch. ``prompts=False``: without the replies' recorded
        prompts (``has_prompt`` says which have one; ``prompt`` reads it): each is as long
        as the conversation before it, so a page that opens a long conversation would read
        the conversation once per reply."""
        with self._read("reading a conversation") as session:
            row = self._owned(session, owner, conversation_id, load_messages=True)
            return _conversation(row, row.messages, utcnow(), _prompts(session, row, prompts))

    def prompt(self, owner: str, message_id: int) -> dict[str, Any] | None:
        """The prompt recorded with this reply (None: none was)."""
        with self._read("reading a prompt") as session:
            found = session.execute(
                select(MessageRow.prompt)
                .join(MessageRow.conversation)
                .where(MessageRow.id == message_id, ConversationRow.owner == owner)
            ).first()
            if found is None:
                raise NotFound(f"no message {message_id}")
            return cast("dict[str, Any] | None", found[0])

    def branch_path(self, owner: str, conversation_id: str) -> Sequence[MessageRecord]:
        """The conversation's current branch, oldest first (what the model is sent)."""
        return self.get(owner, conversation_id).messages

    def select_branch(
        self, owner: str, conversation_id: str, message_id: int
    ) -> Sequence[MessageRecord]:
        """Make the branch through ``message_id`` current and return it.

        The branch follows the newest replies below that message to their end, so picking
        ``‹ 1/2 ›`` on an earlier reply shows that reply's whole continuation.
        """
        with self._write("switching branches") as session:
            row = self._owned(session, owner, conversation_id, load_messages=True, lock=True)
            conversation = _conversation(row, row.messages, utcnow(), _prompts(session, row))
            try:
                conversation.message(message_id)
            except KeyError:
                raise NotFound(
                    f"no message {message_id} in conversation {conversation_id}"
                ) from None
            row.leaf_id = conversation.newest_leaf(message_id)
            return conversation.path_to(row.leaf_id)

    def resolve_id(self, owner: str, prefix: str) -> str:
        """The full id of the owner's conversation whose id starts with ``prefix`` (for the CLI)."""
        prefix = prefix.strip().lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise NotFound(f"no conversation {prefix!r}")
        query = (
            select(ConversationRow.id)
            .where(ConversationRow.owner == owner, ConversationRow.id.startswith(prefix))
            .limit(2)
        )
        with self._read("finding a conversation") as session:
            ids = list(session.scalars(query))
        if not ids:
            raise NotFound(f"no conversation {prefix!r}")
        if len(ids) > 1:
            raise StoreError(f"{prefix!r} matches several conversations: give more of the id")
        return ids[0]

    def rename(self, owner: str, conversation_id: str, title: str) -> None:
        with self._write("renaming a conversation") as session:
            row = self._owned(session, owner, conversation_id)
            row.title = _clean_title(title)
            row.updated_at = utcnow()

    def update_settings(
        self,
        owner: str,
        conversation_id: str,
        *,
        backend: str | None = None,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
        system_prompt: str | None = None,
    ) -> None:
        """Change what answers this conversation; ``None`` leaves a field as it is."""
        with self._write("saving conversation settings") as session:
            row = self._owned(session, owner, conversation_id)
            _assign_given(
                row,
                backend=backend,
                model=model,
                system_prompt=system_prompt,
                settings=None if settings is None else dict(settings),
            )
            row.updated_at = utcnow()

    def delete(self, owner: str, conversation_id: str) -> None:
        with self._write("deleting a conversation") as session:
            session.delete(self._owned(session, owner, conversation_id))

    # -- messages

    def add_message(
        self,
        owner: str,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        status: Status = "complete",
        stats: Stats | None = None,
        steps: Sequence[Step] | None = None,
        parent: int | None | Literal["current"] = CURRENT,
        prompt: dict[str, Any] | None = None,
    ) -> int:
        """Add a message below ``parent`` and make its branch current; return its id.

        ``parent`` is by default the end of the current branch (a plain append); give an
        earlier message's parent to add an alternative: an edited user message, or a
        regenerated reply beside the old one. ``None`` starts a new first message. Ids grow:
        later messages have larger ids.
        """
        _check(role=role, status=status)
        with self._write_rows("saving a message") as connection:
            found = connection.execute(_OWNED_LEAF, {"cid": conversation_id, "who": owner}).first()
            if found is None:
                raise NotFound(f"no conversation {conversation_id}")
            parent_id = found.leaf_id if parent == CURRENT else parent
            if parent != CURRENT and parent_id is not None:  # the leaf is this conversation's
                parent_of = connection.scalar(_MESSAGE_CONVERSATION, {"mid": parent_id})
                if parent_of != conversation_id:
                    raise NotFound(f"no message {parent_id} in conversation {conversation_id}")
            now = utcnow()
            message_id = connection.scalar(
                _INSERT_MESSAGE,
                {
                    "conversation_id": conversation_id,
                    "parent_id": parent_id,
                    "role": role,
                    "content": content,
                    "status": status,
                    "stats": _stats_json(stats),
                    "steps": _steps_json(steps),
                    "prompt": prompt,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            assert message_id is not None
            connection.execute(
                _UPDATE_CONVERSATION,
                {"cid": conversation_id, "updated_at": now, "leaf_id": message_id},
            )
            return int(message_id)

    def update_message(
        self,
        owner: str,
        message_id: int,
        *,
        content: str | None = None,
        status: Status | None = None,
        stats: Stats | None = None,
        steps: Sequence[Step] | None = None,
        prompt: dict[str, Any] | None = None,
    ) -> None:
        """Change a saved message (a reply's text so far or final text, status, stats, the
        prompt it answered); ``None`` keeps a field. Each call is also a reply's heartbeat."""
        _check(status=status)
        given = _given(
            content=content,
            status=status,
            stats=_stats_json(stats),
            steps=_steps_json(steps),
            prompt=prompt,
        )
        with self._write_rows("saving a message") as connection:
            found = connection.scalar(_OWNED_MESSAGE, {"mid": message_id, "who": owner})
            if found is None:
                raise NotFound(f"no message {message_id}")
            now = utcnow()
            connection.execute(_UPDATE_MESSAGE, {"mid": message_id, **given, "updated_at": now})
            connection.execute(_UPDATE_CONVERSATION, {"cid": found, "updated_at": now})

    def delete_messages_from(self, owner: str, conversation_id: str, message_id: int) -> None:
        """Remove this message and every reply below it (undo); other branches stay.

        The current branch then ends at the removed message's parent, as the screen shows
        it after an undo (its other versions stay, and a new message joins them).
        """
        with self._write("deleting messages") as session:
            row = self._owned(session, owner, conversation_id, load_messages=True, lock=True)
            conversation = _conversation(row, row.messages, utcnow())  # the tree's shape only
            try:
                removed = conversation.message(message_id)
            except KeyError:
                raise NotFound(
                    f"no message {message_id} in conversation {conversation_id}"
                ) from None
            doomed = _subtree(conversation, message_id)
            for message in list(row.messages):
                if message.id in doomed:
                    session.delete(message)
            remaining = [m for m in conversation.tree if m.id not in doomed]
            conversation.tree = remaining
            row.leaf_id = removed.parent_id
            row.updated_at = utcnow()

    # -- usage (per user and model; the web app and the API record every request)

    def record_usage(
        self,
        owner: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        at: datetime | None = None,
    ) -> None:
        with self._write_rows("recording usage") as connection:
            connection.execute(
                _INSERT_USAGE,
                {
                    "owner": owner,
                    "model": model,
                    "prompt_tokens": max(0, prompt_tokens),
                    "completion_tokens": max(0, completion_tokens),
                    "created_at": at or utcnow(),
                },
            )

    def usage(self, owner: str | None, since: datetime | None = None) -> builtins.list[UsageTotal]:
        """Totals per user and model since ``since``; ``owner=None``: every user (admins)."""
        query = select(
            UsageRow.owner,
            UsageRow.model,
            func.count(UsageRow.id),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0),
        ).group_by(UsageRow.owner, UsageRow.model)
        if owner is not None:
            query = query.where(UsageRow.owner == owner)
        if since is not None:
            query = query.where(UsageRow.created_at >= since)
        with self._read("reading usage") as session:
            rows = session.execute(query.order_by(UsageRow.owner, UsageRow.model)).all()
        return [UsageTotal(o, m, int(n), int(p), int(c)) for o, m, n, p, c in rows]

    def tokens_since(self, owner: str, since: datetime) -> int:
        """Prompt and reply tokens ``owner`` used since ``since`` (for ``tokens_per_day``)."""
        return sum(total.total_tokens for total in self.usage(owner, since))

    # -- export and import

    def export_json(self, owner: str, conversation_id: str) -> dict[str, Any]:
        return export.to_json(self.get(owner, conversation_id))

    def export_markdown(self, owner: str, conversation_id: str) -> str:
        return export.to_markdown(self.get(owner, conversation_id))

    def import_json(self, owner: str, data: Any) -> str:
        """Save an exported conversation for ``owner`` under a new id, timestamps kept."""
        exported = export.parse(data)
        conversation = ConversationRow(
            id=uuid.uuid4().hex,
            owner=owner,
            title=_clean_title(exported.title),
            created_at=exported.created_at,
            updated_at=exported.updated_at,
            backend=exported.backend,
            model=exported.model,
            settings=exported.settings,
            system_prompt=exported.system_prompt,
        )
        with self._write("importing a conversation") as session:
            session.add(conversation)
            new_ids: dict[int, int] = {}
            for m in exported.messages:
                row = MessageRow(
                    conversation_id=conversation.id,
                    parent_id=None if m.parent is None else new_ids[m.parent],
                    role=m.role,
                    content=m.content,
                    status=m.status,
                    stats=None if m.stats is None else _imported_stats(m.stats, m.status),
                    steps=None if m.steps is None else _steps_json(_steps(m.steps)),
                    prompt=m.prompt,
                    created_at=m.created_at or exported.updated_at,
                )
                session.add(row)
                session.flush()
                new_ids[cast(int, m.id)] = row.id
            if exported.messages:
                current = exported.current if exported.current is not None else m.id
                conversation.leaf_id = new_ids[cast(int, current)]
        return conversation.id

    # -- internals

    @contextmanager
    def _read(self, doing: str) -> Iterator[Session]:
        with translated(self.url, doing), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self, doing: str) -> Iterator[Session]:
        """One transaction, committed on leaving the block (``BEGIN IMMEDIATE`` on SQLite)."""
        with translated(self.url, doing), Session(self.engine, expire_on_commit=False) as session:
            session.connection(execution_options={WRITE: True})
            yield session
            session.commit()

    @contextmanager
    def _write_rows(self, doing: str) -> Iterator[Connection]:
        """Like ``_write``, on a plain connection: for the Core statements above."""
        with translated(self.url, doing), self.engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                yield connection

    def _owned(
        self,
        session: Session,
        owner: str,
        conversation_id: str,
        *,
        load_messages: bool = False,
        lock: bool = False,
    ) -> ConversationRow:
        query = select(ConversationRow).where(
            ConversationRow.id == conversation_id, ConversationRow.owner == owner
        )
        if lock:
            query = query.with_for_update()
        if load_messages:
            query = query.options(selectinload(ConversationRow.messages))
        row = session.scalars(query).one_or_none()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        return row

    def _open_error(self, error: BaseException) -> str:
        where = describe(self.url)
        if self.url.get_backend_name() == "sqlite":
            return (
                f"cannot open the database {where}: {reason(error)}; if the file is corrupt or "
                "not mixchat's, move it aside (mixchat leaves it as it is) or set "
                "MIXCHAT_DATABASE_URL"
            )
        return (
            f"cannot open the database {where}: {reason(error)}; check that the server is "
            "running and MIXCHAT_DATABASE_URL"
        )


def _check(*, role: str | None = None, status: str | None = None) -> None:
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")


def _clean_title(title: str) -> str:
    return " ".join(title.split())[:200] or DEFAULT_TITLE


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _summary(row: ConversationRow) -> ConversationSummary:
    return ConversationSummary(
        id=row.id, title=row.title, updated_at=row.updated_at, backend=row.backend, model=row.model
    )


def _prompts(
    session: Session, row: ConversationRow, read: bool = False
) -> dict[int, dict[str, Any] | None]:
    """The conversation's replies that have a recorded prompt, by id, with the prompt when
    ``read`` (None otherwise): one query either way."""
    columns = (MessageRow.id, MessageRow.prompt) if read else (MessageRow.id,)
    found = session.execute(
        select(*columns).where(MessageRow.conversation_id == row.id, MessageRow.prompt.is_not(None))
    )
    return {line[0]: line[1] if read else None for line in found}


def _message(
    row: MessageRow, now: datetime, prompts: dict[int, dict[str, Any] | None]
) -> MessageRecord:
    status = cast(Status, row.status)  # checked on the way in
    if status == "streaming" and (row.updated_at is None or now - row.updated_at > STALE_AFTER):
        status = "interrupted"  # the process writing it stopped saving: it died mid-reply
    return MessageRecord(
        id=row.id,
        role=cast(Role, row.role),
        content=row.content,
        status=status,
        stats=None
        if row.stats is None
        else Stats.from_dict(row.stats, Outcome.from_status(status)),
        steps=None if row.steps is None else _steps(row.steps),
        created_at=row.created_at,
        parent_id=row.parent_id,
        prompt=prompts.get(row.id),
        has_prompt=row.id in prompts,
    )


def _imported_stats(data: dict[str, Any], status: Status) -> dict[str, Any] | None:
    return _stats_json(Stats.from_dict(data, Outcome.from_status(status)))


def _stats_json(stats: Stats | None) -> dict[str, Any] | None:
    return None if stats is None else stats.to_dict()


def _steps_json(steps: Sequence[Step] | None) -> list[Any] | None:
    return None if steps is None else [step.to_dict() for step in steps]


def _steps(data: list[Any]) -> list[Step]:
    """Steps as stored; an entry that is not a JSON object is skipped."""
    return [
        Step.from_dict(item, number=index)
        for index, item in enumerate(data, 1)
        if isinstance(item, dict)
    ]


def _conversation(
    row: ConversationRow,
    messages: list[MessageRow],
    now: datetime,
    prompts: dict[int, dict[str, Any] | None] | None = None,
) -> Conversation:
    tree = [_message(m, now, prompts or {}) for m in messages]
    conversation = Conversation(
        id=row.id,
        title=row.title,
        updated_at=row.updated_at,
        backend=row.backend,
        model=row.model,
        owner=row.owner,
        created_at=row.created_at,
        settings=dict(row.settings),
        system_prompt=row.system_prompt,
        tree=tree,
        leaf_id=row.leaf_id,
    )
    known = {m.id for m in tree}
    leaf = row.leaf_id if row.leaf_id in known else conversation.newest_leaf(None)
    conversation.leaf_id = leaf
    conversation.messages = conversation.path_to(leaf)
    return conversation


def _subtree(conversation: Conversation, message_id: int) -> set[int]:
    """The ids of a message and of every message below it."""
    found = {message_id}
    for record in conversation.tree:  # parents have smaller ids than their replies
        if record.parent_id in found:
            found.add(record.id)
    return found


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that were given; ``None`` means "leave it as it is"."""
    return {name: value for name, value in fields.items() if value is not None}


def _assign_given(row: Any, **fields: Any) -> None:
    for name, value in _given(**fields).items():
        setattr(row, name, value)
