from __future__ import annotations

from pathlib import Path

import pytest

from mixchat.config import AGENT_SAMPLING, SamplingParams, load_settings, validate_sampling
from mixchat.errors import ConfigError


def test_defaults_are_the_tutorials_chat_settings() -> None:
    settings = load_settings()
    assert settings.backend == "llamacpp" and settings.model is None
    assert settings.sampling() == SamplingParams(
        temperature=0.7, top_p=0.95, top_k=50, max_tokens=256
    )


def test_agent_defaults_are_the_walkthroughs() -> None:
    assert (
        AGENT_SAMPLING.temperature,
        AGENT_SAMPLING.top_p,
        AGENT_SAMPLING.repetition_penalty,
        AGENT_SAMPLING.max_tokens,
    ) == (0.1, 0.15, 1.1, 512)


def test_environment_and_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXCHAT_BACKEND", "openai")
    monkeypatch.setenv("MIXCHAT_TEMPERATURE", "0.2")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-secret")
    settings = load_settings()
    assert settings.backend == "openai" and settings.temperature == 0.2
    assert settings.base_url == "http://127.0.0.1:8000/v1"
    assert settings.mistral_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings)


def test_overrides_beat_environment_beats_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('backend = "echo"\ntemperature = 0.3\ntop_k = 7\n')
    monkeypatch.setenv("MIXCHAT_CONFIG", str(config))
    monkeypatch.setenv("MIXCHAT_TEMPERATURE", "0.4")
    settings = load_settings(top_k=None, max_tokens=9)
    assert (settings.backend, settings.temperature, settings.top_k, settings.max_tokens) == (
        "echo",
        0.4,
        7,
        9,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"temperature": -1},
            "invalid setting temperature=-1: Input should be greater than or equal to 0",
        ),
        ({"top_p": 2}, "invalid setting top_p=2: Input should be less than or equal to 1"),
        ({"max_tokens": 0}, "invalid setting max_tokens=0"),
        (
            {"quantization": "3bit"},
            "invalid setting quantization='3bit': Input should be 'none', '4bit' or '8bit'",
        ),
        ({"colour": "red"}, "invalid setting colour='red': unknown setting"),
    ],
)
def test_invalid_values_give_one_line_naming_the_setting(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(**overrides)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_broken_config_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("backend = [unclosed\n")
    monkeypatch.setenv("MIXCHAT_CONFIG", str(config))
    with pytest.raises(ConfigError, match="config file"):
        load_settings()


def test_api_keys_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(mistral_api_key=12345678)
    assert "12345678" not in str(error.value)


def test_validate_sampling() -> None:
    assert validate_sampling(temperature=0).temperature == 0
    with pytest.raises(ConfigError, match="repetition_penalty"):
        validate_sampling(repetition_penalty=9)


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).database == f"sqlite:///{tmp_path / 'mixchat.db'}"
