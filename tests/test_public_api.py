"""The public surface: what ``import mixchat`` offers is what is intended, and one version."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import mixchat

INTENDED = {
    # backends and their stream
    "Backend",
    "CancelToken",
    "Capability",
    "ChatRequest",
    "Done",
    "Queued",
    "Reply",
    "TextDelta",
    "get_backend",
    "register",
    # the vocabulary every layer shares
    "Message",
    "Outcome",
    "Stats",
    # settings and errors
    "SamplingParams",
    "Settings",
    "load_settings",
    "BackendError",
    "ConfigError",
    "MixchatError",
    # prompts
    "mixtral_prompt",
    "mixtral_token_ids",
    # the agent and tools (loaded on first use)
    "Agent",
    "Tool",
    "tool",
    "__version__",
}


def test_mixchat_exports_exactly_the_intended_names() -> None:
    assert set(mixchat.__all__) == INTENDED
    assert len(mixchat.__all__) == len(INTENDED)  # no name listed twice
    for name in mixchat.__all__:
        assert getattr(mixchat, name) is not None


@pytest.mark.parametrize(
    "module",
    [
        "mixchat.agent",
        "mixchat.backends",
        "mixchat.backends.remote",
        "mixchat.errors",
        "mixchat.messages",
        "mixchat.outcome",
        "mixchat.plugins",
        "mixchat.store",
        "mixchat.tools",
        "mixchat.ui",
    ],
)
def test_every_listed_name_of_a_package_exists(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert missing == []


def test_import_star_needs_no_optional_library() -> None:
    code = (
        "from mixchat import *; import sys; "
        "assert not {'torch', 'transformers', 'llama_cpp', 'panel'} & set(sys.modules), "
        "sorted({'torch', 'transformers', 'llama_cpp', 'panel'} & set(sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_version_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", mixchat.__version__)
    assert importlib.metadata.version("mixchat") == mixchat.__version__
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "mixchat.__version__"}
