"""Opening a database: the engine, SQLite's settings for sharing a file, and error translation.

SQLite gets WAL mode (readers never block the writer, and a killed process never corrupts
the file), a busy timeout (several processes wait their turn instead of failing) and foreign
keys. Write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads
and then writes fails at once with "database is locked" when another process wrote in
between, without waiting for the busy timeout.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from mixchat.errors import MissingDependency
from mixchat.store.errors import StoreError

#: Execution option marking a write transaction (``BEGIN IMMEDIATE`` on SQLite).
WRITE = "mixchat_write"
BUSY_TIMEOUT_MS = 10_000
SUPPORTED = ("sqlite", "postgresql")


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL; a bare ``postgresql://`` means psycopg 3, the driver mixchat ships."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"invalid database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in SUPPORTED:
        raise StoreError(f"unsupported database {describe(parsed)}: use sqlite or postgresql")
    return parsed


def describe(url: URL) -> str:
    """How errors name the database: the file for SQLite, the URL without its password otherwise."""
    if url.get_backend_name() == "sqlite":
        return os.path.abspath(url.database) if url.database else ":memory:"
    return url.render_as_string(hide_password=True)


def reason(error: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy's adds the SQL and a link)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0].strip() if lines else type(original).__name__


def open_engine(url: URL, *, connect_timeout: float = 10.0) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created first."""
    if url.get_backend_name() == "sqlite":
        _make_sqlite_dir(url)
        args: dict[str, Any] = {"timeout": BUSY_TIMEOUT_MS / 1000}
    else:
        args = {"connect_timeout": max(1, round(connect_timeout))}
    try:
        pre_ping = url.get_backend_name() != "sqlite"  # a server may restart between requests
        engine = create_engine(url, connect_args=args, pool_pre_ping=pre_ping)
    except NoSuchModuleError:
        raise StoreError(
            f"unknown database driver in {describe(url)}: use sqlite:/// or postgresql+psycopg://"
        ) from None
    except ModuleNotFoundError as error:
        raise MissingDependency(
            error.name or url.drivername, "postgres", "the PostgreSQL database"
        ) from None
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def _make_sqlite_dir(url: URL) -> None:
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the directory for the database {describe(url)}: "
            f"{error.strerror or error}; "
            "choose a writable data_dir or set MIXCHAT_DATABASE_URL"
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            # WAL with NORMAL: a commit is not flushed to the disk at once, only at
            # checkpoints. A killed server loses nothing committed (the WAL is in the OS's
            # hands); a power cut may lose the last commits but never corrupts the file. A
            # full sync per commit cost ~2 ms of CPU per message write, several per exchange.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (once: the mode is kept in the file).

    The switch needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting for the busy timeout, when another process opens a new file at the
    same moment; so wait here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def translated(url: URL, doing: str) -> Iterator[None]:
    """Turn any database failure inside the block into one StoreError line."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, OSError) as error:
        raise StoreError(f"database error {doing} ({describe(url)}): {reason(error)}") from error
