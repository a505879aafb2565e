"""The operator's model catalog: entries checked at start-up, keys kept with their entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixchat import backends
from mixchat.config import load_settings
from mixchat.config.catalog import Catalog
from mixchat.errors import ConfigError

GOOD = """
[models.gpu]
name = "Mixtral (team GPU)"
description = "vLLM on the GPU box"
backend = "openai"
base_url = "http://gpu-box:8000/v1"
model = "mistralai/Mixtral-8x7B-Instruct-v0.1"
api_key_env = "GPU_BOX_KEY"
temperature = 0.3
max_tokens_limit = 1024

[models.hosted]
name = "Mistral Small"
backend = "mistral"
model = "mistral-small-latest"
api_key = "sk-mistral-inline"

[models.quick]
backend = "echo"
"""


def _catalog(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> Catalog:
    config = tmp_path / "config.toml"
    config.write_text(text)
    monkeypatch.setenv("MIXCHAT_CONFIG", str(config))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Catalog.from_settings(load_settings())


def test_entries_keep_their_own_key_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog(
        tmp_path,
        GOOD,
        monkeypatch,
        GPU_BOX_KEY="sk-gpu",
        OPENAI_API_KEY="sk-server-openai",
        MISTRAL_API_KEY="sk-server-mistral",
    )
    assert catalog.choices() == {
        "Mixtral (team GPU)": "gpu",
        "Mistral Small": "hosted",
        "quick": "quick",
    }
    gpu, hosted, quick = (catalog.entries[name].settings for name in ("gpu", "hosted", "quick"))
    assert gpu.openai_api_key is not None and gpu.openai_api_key.get_secret_value() == "sk-gpu"
    assert gpu.mistral_api_key is None and gpu.temperature == 0.3
    assert hosted.mistral_api_key is not None
    assert hosted.mistral_api_key.get_secret_value() == "sk-mistral-inline"
    assert hosted.openai_api_key is None and hosted.base_url is None
    assert quick.openai_api_key is None and quick.mistral_api_key is None
    assert catalog.entries["gpu"].max_tokens_cap() == 1024
    assert catalog.entries["gpu"].max_tokens_cap(user_cap=200) == 200
    settings = catalog.entries["gpu"].for_request("be brief", {"max_tokens": 5000})
    assert settings.max_tokens == 1024 and settings.system_prompt == "be brief"


def test_every_bad_entry_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = """
[models.ok]
backend = "echo"

[models.nokey]
backend = "openai"
base_url = "http://gpu-box:8000/v1"
api_key_env = "NOT_SET_ANYWHERE"

[models.typo]
backend = "echo"
temprature = 0.5

[models.hot]
backend = "echo"
temperature = 7

[models.missing]
backend = "llamacpp"
model = "/no/such/model.gguf"

[models.what]
backend = "nope"

[models.nobackend]
model = "x"

[models.nourl]
backend = "openai"
"""
    with pytest.raises(ConfigError) as raised:
        _catalog(tmp_path, bad, monkeypatch)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("7 bad model catalog entries in ")
    assert lines[1:] == [
        "models.nokey: api_key_env names NOT_SET_ANYWHERE, which is not set",
        "models.typo: unknown field 'temprature'",
        "models.hot: temperature=7: Input should be less than or equal to 2",
        "models.missing: GGUF file not found: /no/such/model.gguf",
        "models.what: unknown backend 'nope': choose one of " + ", ".join(backends.names()),
        "models.nobackend: backend is required",
        "models.nourl: an openai entry needs base_url (or an API key for the OpenAI API)",
    ]


def test_without_a_catalog_the_top_level_settings_are_one_entry() -> None:
    settings = load_settings(
        backend="openai",
        base_url="http://127.0.0.1:8000/v1",
        openai_api_key="sk-op",
        mistral_api_key="sk-other",
    )
    catalog = Catalog.from_settings(settings)
    (entry,) = catalog.entries.values()
    assert entry.name == "openai" and entry.display_name == "default model (openai)"
    assert entry.settings.openai_api_key is not None
    assert entry.settings.mistral_api_key is None  # a key never rides along to another URL


def _mixchat(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIXCHAT_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args], capture_output=True, text=True, env=env
    )


def test_mixchat_models_lists_the_catalog(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD.replace('api_key_env = "GPU_BOX_KEY"', 'api_key = "sk-gpu"'))
    result = _mixchat("models", config=config)
    assert result.returncode == 0, result.stderr
    assert "Mixtral (team GPU)" in result.stdout and "vLLM on the GPU box" in result.stdout
    assert "max_tokens up to 1024" in result.stdout
    assert "sk-gpu" not in result.stdout and "sk-mistral" not in result.stdout


def test_serve_refuses_to_start_with_a_bad_catalog(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[models.a]\nbackend = "nope"\n[models.b]\nbackend = "echo"\ntop_p = 3\n')
    result = _mixchat("serve", "--port", "0", config=config)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mixchat: error: 2 bad model catalog entries" in result.stderr
    assert "models.a: unknown backend 'nope'" in result.stderr
    assert "models.b: top_p=3" in result.stderr


def test_a_users_endpoint_carries_only_the_users_key_and_must_be_a_url() -> None:
    from pydantic import SecretStr

    from mixchat.config.catalog import user_entry
    from mixchat.errors import AddressRefused

    base = load_settings(
        backend="openai",
        base_url="http://gpu-box:8000/v1",
        openai_api_key="sk-server",
        mistral_api_key="sk-server-mistral",
    )
    mine = user_entry(base, "mistral", "https://api.example.org", None, SecretStr("sk-mine"))
    assert mine.settings.mistral_api_key is not None
    assert mine.settings.mistral_api_key.get_secret_value() == "sk-mine"
    assert mine.settings.openai_api_key is None and mine.settings.untrusted_endpoint
    keyless = user_entry(base, "openai", "https://api.example.org/v1", "m", None)
    assert keyless.settings.openai_api_key is None  # never the server's key
    for bad in ("TheBloke/Mixtral-GGUF:x.gguf", "/etc/passwd", "file:///etc/passwd", ""):
        with pytest.raises(AddressRefused):
            user_entry(base, "openai", bad, None, None)
    with pytest.raises(ConfigError):
        user_entry(base, "llamacpp", "https://api.example.org", None, None)
