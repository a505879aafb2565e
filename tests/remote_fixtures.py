"""Fixtures for the remote backend tests: a real local OpenAI-compatible server, the fault server.

The real server is llama-cpp-python's own (``python -m llama_cpp.server``, its ``server`` extra)
serving the embedded Gemma 3 GGUF (conftest's ``embedded_gguf``), started once per test
session on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from fault_server import FaultServer
from mixchat.backends import backend_class
from mixchat.backends.remote import RemoteBackend
from mixchat.config import load_settings
from processes import free_port, running_process

SERVER_START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def llama_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The root URL of a llama-cpp-python server on 127.0.0.1 (``/v1`` is its OpenAI API)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2",
        "--chat_format", "gemma",  # the GGUF carries no chat template
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running_process(command, log_path, f"{url}/v1/models", SERVER_START_TIMEOUT):
        yield url


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


MakeBackend = Callable[..., RemoteBackend]


@pytest.fixture
async def make_backend() -> AsyncIterator[MakeBackend]:
    """Build remote backends with test-sized timeouts and retry delays; closes them after."""
    made: list[RemoteBackend] = []

    def make(name: str, base_url: str, **overrides: object) -> RemoteBackend:
        settings = load_settings(
            backend=name,
            base_url=base_url,
            **{
                "model": "m",
                "read_timeout": 5.0,
                "connect_timeout": 2.0,
                "max_retries": 2,
                **overrides,
            },
        )
        backend = backend_class(name)(settings)
        assert isinstance(backend, RemoteBackend)
        backend.retry.base_delay = 0.01
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
