"""A throwaway PostgreSQL server for the test session: initdb into a temporary directory,
start it on a free port of 127.0.0.1 (its unix socket inside that directory), remove it after.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` OS user
(through ``runuser``), in a directory that user owns. Each test gets a fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from processes import free_port

USER = "mixchat"


def pg_bin(name: str) -> str:
    """A PostgreSQL program: Debian's newest /usr/lib/postgresql/*/bin, else the PATH's."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(Path(path).parts[-3])
    )
    program = found[-1] if found else shutil.which(name)
    if program is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return program


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """One PostgreSQL cluster in ``root``; ``new_database()`` returns a URL to an empty database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self._names = itertools.count(1)

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            _as_server_user(list(command)), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr}{result.stdout}{log}")

    def start(self) -> None:
        """Create the cluster (the first time) and start the server."""
        if not self.data.exists():
            self._initdb()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A new server, stopped and deleted on leaving the block."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="mixchat-pg-")))
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
