"""Presets: a named system prompt, catalog model and sampling; the operator's from the config
(read-only), each user's in the store; applied by the CLI (--preset, /preset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixchat.config import load_settings
from mixchat.config.presets import Preset, operator_presets, split_command
from mixchat.errors import ConfigError
from mixchat.store import LOCAL_OWNER, ConversationStore, NotFound, StoreError
from mixchat.store.presets import Presets

CONFIG = """
backend = "echo"

[models.echo]
name = "Echo"
backend = "echo"

[models.short]
name = "Short echo"
backend = "echo"
max_tokens_limit = 100

[presets.terse]
description = "Three words at most"
system_prompt = "Answer in three words."
model = "short"
temperature = 0.2
max_tokens = 3
"""


def run(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    config = data / "config.toml"
    config.write_text(CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "MIXCHAT_DATA_DIR": str(data),
            "MIXCHAT_CONFIG": str(config),
            "MIXCHAT_ECHO_DELAY": "0",
        },
    )


def _settings(tmp_path: Path, presets: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    settings = load_settings(backend="echo", data_dir=tmp_path)
    return settings.model_copy(update={"presets": presets or {}})


def test_a_user_saves_lists_and_deletes_presets_and_the_operators_are_read_only(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, {"terse": {"system_prompt": "Be brief.", "temperature": 0.2}})
    with ConversationStore(f"sqlite:///{tmp_path / 'x.db'}") as store:
        presets = Presets(settings, store)
        presets.save("alice", Preset(name="pirate", system_prompt="Talk like a pirate."))
        assert [p.name for p in presets.list("alice")] == ["terse", "pirate"]
        assert [p.name for p in presets.list("bob")] == ["terse"]  # per user
        assert presets.get("alice", "terse").operator
        presets.save("alice", Preset(name="pirate", temperature=1.5))  # replaced
        assert presets.get("alice", "pirate").temperature == 1.5
        assert presets.get("alice", "pirate").system_prompt is None
        with pytest.raises(StoreError, match="operator's preset"):
            presets.save("alice", Preset(name="terse"))
        with pytest.raises(StoreError, match="cannot be deleted"):
            presets.delete("alice", "terse")
        presets.delete("alice", "pirate")
        with pytest.raises(NotFound, match="presets: terse"):
            presets.get("alice", "pirate")


def test_a_preset_is_checked_and_applies_its_model_prompt_and_sampling(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Preset(name="/bad name")
    with pytest.raises(ValueError):
        Preset(name="hot", temperature=9.0)
    with pytest.raises(ConfigError, match="preset broken"):
        operator_presets(_settings(tmp_path, {"broken": {"temprature": 1}}))
    settings = load_settings(backend="echo", data_dir=tmp_path).model_copy(
        update={"models": {"e": {"backend": "echo", "max_tokens_limit": 50}}}
    )
    applied = Preset(name="p", model="e", system_prompt="S", top_k=7, max_tokens=500).apply(
        settings
    )
    assert (applied.system_prompt, applied.top_k, applied.max_tokens) == ("S", 7, 50)
    with pytest.raises(ConfigError, match="no model 'gone'"):
        Preset(name="q", model="gone").apply(settings)
    assert split_command("/terse what is up", {"terse"}) == ("terse", "what is up")
    assert split_command("/terse", {"terse"}) == ("terse", "")
    assert split_command("/other hi", {"terse"}) == (None, "/other hi")
    assert split_command("a /terse b", {"terse"}) == (None, "a /terse b")


def test_ask_and_chat_take_a_preset(tmp_path: Path) -> None:
    listed = run(tmp_path, "presets")
    assert listed.returncode == 0, listed.stderr
    assert "terse" in listed.stdout and "(operator)" in listed.stdout
    assert "max tokens 3" in listed.stdout
    asked = run(tmp_path, "ask", "--preset", "terse", "--stats", "one two three four five")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "one two three"  # its max_tokens
    assert "3 tokens" in asked.stderr and "length" in asked.stderr
    shown = run(tmp_path, "prompt")  # what the model received: the preset's system prompt
    assert "Answer in three words." in shown.stdout, shown.stdout + shown.stderr
    chat = run(
        tmp_path,
        "chat",
        "--preset",
        "terse",
        stdin="a b c d e\n/preset\n/preset nothing\n/exit\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "a b c" in chat.stdout and "a b c d" not in chat.stdout
    assert "terse: model short" in chat.stderr  # /preset lists them
    assert "no preset 'nothing'" in chat.stderr
    missing = run(tmp_path, "ask", "--preset", "nothing", "hi")
    assert missing.returncode == 1
    assert "no preset 'nothing' (presets: terse)" in missing.stderr


def test_preset_in_the_terminal_chat_changes_the_next_replies(tmp_path: Path) -> None:
    chat = run(
        tmp_path,
        "chat",
        stdin="one two three four five\n/preset terse\nsix seven eight nine\n/exit\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "one two three four five" in chat.stdout
    assert "six seven eight" in chat.stdout and "six seven eight nine" not in chat.stdout
    assert "(preset terse:" in chat.stderr
    with ConversationStore(f"sqlite:///{tmp_path / 'mixchat.db'}") as store:
        assert len(store.list(LOCAL_OWNER)) == 1
