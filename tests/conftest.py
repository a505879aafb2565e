"""Shared fixtures. Every test runs offline, in a data directory of its own session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from postgres_fixtures import postgres_server  # noqa: F401  (a fixture, for store_url)

if TYPE_CHECKING:
    from mixchat.store import ConversationStore

# Isolate from the developer's config, keys and data before any Settings is made.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mixchat-tests-"))
os.environ["MIXCHAT_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["MIXCHAT_CONFIG"] = str(_SESSION_DIR / "no-config.toml")
os.environ["HF_HUB_OFFLINE"] = "1"
for _name in list(os.environ):
    if _name.startswith("MIXCHAT_") and _name not in ("MIXCHAT_DATA_DIR", "MIXCHAT_CONFIG"):
        del os.environ[_name]
for _name in ("MISTRAL_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ["MIXCHAT_DATA_DIR"])


@pytest.fixture(scope="session")
def embedded_gguf(data_dir: Path) -> Path:
    """The embedded default model, assembled where the llamacpp backend looks for it."""
    from mixchat.backends.gguf_files import embedded_gguf as assemble

    return assemble(data_dir)


@pytest.fixture(scope="session")
def tiny_mixtral_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Mixtral (MoE) GGUF with Mixtral's real vocabulary."""
    from tiny_mixtral_gguf import build_tiny_mixtral_gguf

    return build_tiny_mixtral_gguf(tmp_path_factory.mktemp("gguf") / "tiny-mixtral.gguf")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database, once in SQLite and once in PostgreSQL (the store tests run on
    both; ``postgres_server`` is in postgres_fixtures.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'mixchat.db'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[ConversationStore]:
    """A ConversationStore open on ``store_url``."""
    from mixchat.store import ConversationStore

    with ConversationStore(store_url) as opened:
        yield opened


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium per browser-test module."""
    from browser_fixtures import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def session(browser: object, server: object) -> Iterator[object]:
    """A fresh browser context on the module's ``server`` fixture, closed after the test."""
    from browser_fixtures import open_session

    opened = open_session(browser, server.url)  # type: ignore[arg-type, attr-defined]
    yield opened
    opened.page.context.close()
