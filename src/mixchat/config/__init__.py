"""Configuration: one pydantic-settings model fed by CLI flags, environment and a TOML file.

Precedence, highest first: explicit overrides (CLI flags, the web app's sidebar), environment
variables (``MIXCHAT_*``, plus the standard ``MISTRAL_API_KEY``, ``OPENAI_API_KEY``,
``OPENAI_BASE_URL``), the config file (``MIXCHAT_CONFIG`` or ``<config dir>/config.toml``),
then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mixchat.config.limits import UserLimits
from mixchat.errors import ConfigError

APP_NAME = "mixchat"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def config_file() -> Path:
    return Path(os.environ.get("MIXCHAT_CONFIG") or config_dir() / "config.toml")


def _server_url(value: str | None) -> str | None:
    """A server URL is http(s)://host[...]: anything else is refused now, as not a URL."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        example = value if "://" in value else f"http://{value}"
        hint = f", e.g. {example}" if " " not in value and "://" not in value else ""
        raise ValueError(f"{value!r} is not a URL: write it with http:// or https://{hint}")
    return value


class SamplingParams(BaseModel):
    """Sampling parameters of one request; defaults are the original tutorial's chat settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=2.0, description="0 means greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0, description="0 disables top-k")
    max_tokens: int = Field(256, ge=1, le=131072)
    repetition_penalty: float = Field(1.0, ge=0.5, le=2.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None


#: Agent defaults, from the agent walkthrough.
AGENT_SAMPLING = SamplingParams(
    temperature=0.1, top_p=0.15, top_k=0, max_tokens=512, repetition_penalty=1.1
)

BackendName = str  # validated against the registry, which users can extend


class McpServerConfig(BaseModel):
    """One MCP server whose tools the agent gets: ``[mcp_servers.NAME]`` in the config file.

    Either ``command`` (a program that speaks MCP on stdin/stdout, started by mixchat) or
    ``url`` (a streamable-HTTP endpoint, e.g. ``http://127.0.0.1:8000/mcp``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: tuple[str, ...] | None = Field(None, description="program and arguments (stdio)")
    url: str | None = Field(None, description="streamable-HTTP endpoint")
    env: dict[str, str] = Field(default_factory=dict, description="environment for the command")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers for the url")
    timeout: float = Field(30.0, gt=0, description="seconds a tool call may take")
    start_timeout: float = Field(60.0, gt=0, description="seconds to start and list tools")
    tools: tuple[str, ...] | None = Field(None, description="expose only these tools")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError('give either command = [...] (stdio) or url = "..." (HTTP)')
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        return self


class Settings(BaseSettings):
    """Every setting of mixchat. Field names are the CLI flags and the TOML keys."""

    model_config = SettingsConfigDict(
        env_prefix="MIXCHAT_",
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
    )

    # -- which model answers
    backend: BackendName = Field(
        "llamacpp", description="echo, llamacpp, transformers, mistral, openai, or a registered one"
    )
    model: str | None = Field(
        None,
        description="GGUF path or Hugging Face repo (llamacpp), model id or directory (transformers), model name (mistral, openai); empty means the backend's default",
    )
    model_file: str | None = Field(
        None, description="GGUF file name inside a Hugging Face repo (llamacpp)"
    )
    system_prompt: str = Field("", description="system message sent before the conversation")

    # -- sampling (defaults: the original tutorial's chat settings)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    max_tokens: int = Field(256, ge=1, le=131072)
    repetition_penalty: float = Field(1.0, ge=0.5, le=2.0)
    seed: int | None = None

    # -- llama.cpp
    n_ctx: int = Field(4096, ge=256, description="context length in tokens (llamacpp)")
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads (llamacpp); empty: all cores"
    )
    n_gpu_layers: int = Field(
        0, ge=-1, description="layers offloaded to the GPU (llamacpp); -1: all"
    )
    chat_format: str | None = Field(
        None,
        description="prompt format: mixtral, gemma, or a llama-cpp-python chat format; empty: detect",
    )

    # -- transformers
    device_map: str = Field("auto", description="transformers device map")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    quantization: Literal["none", "4bit", "8bit"] = "none"
    trust_remote_code: bool = False
    verbose: bool = Field(
        False, description="show the model library's own log lines (llama.cpp) on stderr"
    )

    # -- remote servers
    base_url: Annotated[str | None, AfterValidator(_server_url)] = Field(
        None,
        validation_alias=AliasChoices("base_url", "MIXCHAT_BASE_URL", "OPENAI_BASE_URL"),
        description="server URL: an OpenAI-compatible /v1 URL (openai), or server_url (mistral)",
    )
    mistral_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "mistral_api_key", "MIXCHAT_MISTRAL_API_KEY", "MISTRAL_API_KEY"
        ),
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("openai_api_key", "MIXCHAT_OPENAI_API_KEY", "OPENAI_API_KEY"),
    )
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)

    # -- echo (diagnostics)
    echo_delay: float = Field(0.02, ge=0.0, le=10.0, description="seconds between words (echo)")

    # -- agent
    agent_max_steps: int = Field(6, ge=1, le=50)
    mcp_servers: dict[str, McpServerConfig] = Field(
        default_factory=dict, description="MCP servers whose tools the agent gets"
    )

    # -- storage
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(None, description="SQLAlchemy URL; empty: SQLite in data_dir")

    # -- web app
    host: str = "127.0.0.1"
    port: int = Field(5006, ge=0, le=65535)
    websocket_compression: int = Field(
        6,
        ge=0,
        le=9,
        description="zlib level of the page's websocket (permessage-deflate): a page and a "
        "streamed reply then cross the network in ~1/4 of their bytes; 0: off",
    )

    # -- a team server (see mixchat.config.catalog and mixchat.accounting)
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="the operator's model catalog: [models.NAME] tables; empty: one entry "
        "from backend, model and base_url",
    )
    presets: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="the operator's presets: [presets.NAME] tables (system_prompt, model, "
        "sampling), read-only for users",
    )
    limits: UserLimits = Field(default_factory=lambda: UserLimits())
    admins: list[str] = Field(default_factory=list, description="user names with the admin role")
    admin_groups: list[str] = Field(
        default_factory=list, description="OIDC groups whose members are admins"
    )
    allow_user_endpoints: bool = Field(
        False, description="let users add their own OpenAI-compatible or Mistral endpoint"
    )
    untrusted_endpoint: bool = Field(
        False,
        description="set by the app for a user's own endpoint: every connection goes through "
        "the address guard",
    )
    user_endpoint_allow: list[str] = Field(
        default_factory=list,
        description="private networks or hosts user endpoints may reach anyway (CIDR, IP or "
        "host name, optionally :PORT)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file()))

    def sampling(self, **overrides: Any) -> SamplingParams:
        """The request's sampling parameters: these settings, then ``overrides``."""
        base = {
            name: getattr(self, name) for name in SamplingParams.model_fields if hasattr(self, name)
        }
        return SamplingParams(**{**base, **overrides})

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mixchat.db'}"


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad setting, its value and what is allowed."""
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    value = first.get("input")
    shown = "" if isinstance(value, dict) or "api_key" in name else f"={value!r}"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"invalid setting {name}{shown}: {message}{suffix}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source; ``None`` overrides are ignored so unset CLI flags fall through."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except (OSError, ValueError) as error:  # an unreadable or malformed config file
        raise ConfigError(f"cannot read the config file {config_file()}: {error}") from None


def validate_sampling(**values: Any) -> SamplingParams:
    """SamplingParams, or a ConfigError with one clear line."""
    try:
        return SamplingParams(**values)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
