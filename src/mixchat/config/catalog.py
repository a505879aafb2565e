"""The operator's model catalog: the only models a web user can pick, and only by name.

A session sends the name of an entry, never a path, a repository id or a URL; the server
builds that entry's :class:`~mixchat.config.Settings` from the config file. Each entry carries
its own key, so a key only ever goes to the URL configured next to it::

    [models.mixtral]
    name = "Mixtral 8x7B (team GPU)"          # what users see
    description = "Our vLLM server"
    backend = "openai"
    base_url = "http://gpu-box:8000/v1"
    model = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    api_key_env = "GPU_BOX_KEY"               # or api_key = "..."; neither: no key
    temperature = 0.5                         # default sampling, and backend settings
    max_tokens_limit = 2048                   # the longest reply a user may ask for

Without ``[models]``, ``backend``/``model``/``base_url`` (flags, environment or file) make a
one-entry catalog that keeps the top-level key of that backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
)

from mixchat.config import SamplingParams, Settings
from mixchat.errors import ConfigError

#: Backends that take an API key, and the Settings field that holds it.
KEY_FIELDS = {"mistral": "mistral_api_key", "openai": "openai_api_key"}
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "max_tokens", "repetition_penalty")
#: Settings an entry may set besides its own fields: what answers, and how.
ENTRY_SETTINGS = (
    "model",
    "model_file",
    "base_url",
    "system_prompt",
    *SAMPLING_FIELDS,
    "seed",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "chat_format",
    "device_map",
    "dtype",
    "quantization",
    "trust_remote_code",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "echo_delay",
)

#: What an entry does not say comes from the top-level settings (sampling, timeouts, threads),
#: except which model and where: a top-level path or URL must never leak into another entry.
_IDENTITY_RESET: dict[str, Any] = {"model": None, "model_file": None, "base_url": None}


class ModelEntry(BaseModel):
    """One ``[models.NAME]`` table; the other keys it may hold are ``ENTRY_SETTINGS``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    backend: str
    name: str | None = Field(None, description="display name; default: the entry's name")
    description: str = ""
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    api_key: SecretStr | None = None
    max_tokens_limit: int | None = Field(None, ge=1, le=131072)


@dataclass(frozen=True)
class CatalogEntry:
    """A model users may pick: its name, what they see, and the settings the server uses."""

    name: str
    display_name: str
    description: str
    settings: Settings
    max_tokens_limit: int | None = None

    @property
    def backend(self) -> str:
        return self.settings.backend

    def max_tokens_cap(self, user_cap: int | None = None) -> int:
        """The longest reply allowed here: the entry's limit and the user's, whichever is less."""
        caps = [cap for cap in (self.max_tokens_limit, user_cap) if cap is not None]
        return min(caps) if caps else 131072

    def for_request(self, system_prompt: str, sampling: dict[str, Any]) -> Settings:
        """This entry's settings with a session's choices (system prompt, sampling) applied.

        Values outside what the entry allows are clamped; nothing else a session sends is read.
        """
        chosen = {name: sampling[name] for name in SAMPLING_FIELDS if name in sampling}
        if "max_tokens" in chosen:
            chosen["max_tokens"] = min(int(chosen["max_tokens"]), self.max_tokens_cap())
        params = self.settings.sampling(**chosen)  # validated
        update = {name: getattr(params, name) for name in SAMPLING_FIELDS}
        return self.settings.model_copy(update={**update, "system_prompt": system_prompt})


@dataclass(frozen=True)
class Catalog:
    """The entries, in the order the operator wrote them; the first is the default."""

    entries: dict[str, CatalogEntry]

    @property
    def default(self) -> CatalogEntry:
        return next(iter(self.entries.values()))

    def get(self, name: str | None) -> CatalogEntry | None:
        return self.entries.get(name) if isinstance(name, str) else None

    def choices(self) -> dict[str, str]:
        """Display name -> entry name, for a select widget (the browser sees only these)."""
        return {entry.display_name: entry.name for entry in self.entries.values()}

    @classmethod
    def from_settings(cls, settings: Settings, environ: dict[str, str] | None = None) -> Catalog:
        """The catalog of ``settings.models``, or the one entry of the top-level settings.

        Raises ConfigError listing every bad entry, one line each.
        """
        if not settings.models:
            return cls({settings.backend: implied_entry(settings)})
        env = os.environ if environ is None else environ
        entries: dict[str, CatalogEntry] = {}
        problems: list[str] = []
        for name, raw in settings.models.items():
            if name == USER_ENDPOINT:
                problems.append(f"models.{name}: this name is reserved for users' own endpoints")
                continue
            try:
                entries[name] = build_entry(settings, name, raw, env)
            except ConfigError as error:
                problems.append(f"models.{name}: {error}")
        shown = [entry.display_name for entry in entries.values()]
        problems += [
            f"models.{entry.name}: the display name {entry.display_name!r} is used twice"
            for index, entry in enumerate(entries.values())
            if entry.display_name in shown[:index]
        ]
        if problems:
            count = f"{len(problems)} bad model catalog entr{'y' if len(problems) == 1 else 'ies'}"
            raise ConfigError("\n".join([f"{count} in {_where()}:", *problems]))
        return cls(entries)


def implied_entry(settings: Settings) -> CatalogEntry:
    """The one entry that ``--backend/--model/--base-url`` (or the top-level settings) make."""
    from mixchat.backends import backend_class

    backend_class(settings.backend)  # an unknown backend is one clear line at start-up
    own_key = key_field(settings.backend)
    cleared = {field: None for field in KEY_FIELDS.values() if field != own_key}
    model = Path(settings.model).name if settings.model else "default model"
    return CatalogEntry(
        name=settings.backend,
        display_name=f"{model} ({settings.backend})",
        description="",
        settings=settings.model_copy(update={**cleared, "models": {}}),
        max_tokens_limit=None,
    )


def build_entry(settings: Settings, name: str, raw: Any, env: Any) -> CatalogEntry:
    """One validated entry; ConfigError with one line saying what is wrong."""
    from mixchat.backends import names

    if not isinstance(raw, dict):
        raise ConfigError("must be a table ([models.NAME] with backend = ...)")
    try:
        entry = ModelEntry.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_first_problem(error)) from None
    if entry.backend not in names():
        raise ConfigError(f"unknown backend {entry.backend!r}: choose one of {', '.join(names())}")
    given = dict(entry.model_extra or {})
    update: dict[str, Any] = {"backend": entry.backend, "models": {}}
    for field, value in given.items():
        update[field] = _validated(field, value)
    _check_sampling(update)
    update.update(_keys(entry, env))
    if entry.backend == "llamacpp":
        _check_local_gguf(update.get("model"))
    if entry.backend == "openai" and not update.get("base_url") and not update["openai_api_key"]:
        raise ConfigError("an openai entry needs base_url (or an API key for the OpenAI API)")
    built = settings.model_copy(update={**_IDENTITY_RESET, **update})
    return CatalogEntry(
        name=name,
        display_name=(entry.name or name).strip() or name,
        description=entry.description,
        settings=built,
        max_tokens_limit=entry.max_tokens_limit,
    )


def key_field(backend: str) -> str | None:
    """The Settings field holding ``backend``'s key (registered remote backends say theirs)."""
    if backend in KEY_FIELDS:
        return KEY_FIELDS[backend]
    from mixchat.backends import backend_class

    try:
        return getattr(backend_class(backend), "api_key_field", None)
    except Exception:  # an unavailable backend has no key to look after
        return None


def _keys(entry: ModelEntry, env: Any) -> dict[str, Any]:
    """Both key fields: this entry's own key in its backend's field, every other one empty."""
    keys: dict[str, Any] = {field: None for field in KEY_FIELDS.values()}
    secret = entry.api_key
    if entry.api_key_env:
        value = env.get(entry.api_key_env)
        if not value:
            raise ConfigError(f"api_key_env names {entry.api_key_env}, which is not set")
        secret = SecretStr(value)
    field = key_field(entry.backend)
    if secret is not None:
        if field is None:
            raise ConfigError(f"the {entry.backend} backend takes no API key")
        keys[field] = secret
    return keys


def _validated(field: str, value: Any) -> Any:
    if field not in ENTRY_SETTINGS:
        raise ConfigError(f"unknown field {field!r}")
    info = Settings.model_fields[field]
    try:
        annotation: Any = (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as error:
        raise ConfigError(
            f"{field}={value!r}: {error.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None


def _check_sampling(update: dict[str, Any]) -> None:
    given = {name: update[name] for name in SAMPLING_FIELDS if name in update}
    try:
        SamplingParams(**given)
    except ValidationError as error:
        raise ConfigError(_first_problem(error)) from None


def _check_local_gguf(model: str | None) -> None:
    """A GGUF path that does not exist is a bad entry now, not at a user's first message."""
    if not model:
        return
    path = Path(model).expanduser()
    repo, _, _ = model.partition(":")
    looks_like_repo = repo.count("/") == 1 and not repo.startswith((".", "/", "~"))
    if not path.is_file() and not looks_like_repo:
        raise ConfigError(f"GGUF file not found: {path}")


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"{where} is required"
    if first["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    value = first.get("input")
    shown = "" if "api_key" in where or isinstance(value, dict) else f"={value!r}"
    return f"{where}{shown}: {first['msg'].removeprefix('Value error, ')}"


def _where() -> str:
    from mixchat.config import config_file

    return str(config_file())


def user_entry(
    base: Settings, kind: str, url: str, model: str | None, key: SecretStr | None
) -> CatalogEntry:
    """A user's own endpoint (``allow_user_endpoints``): their URL, their key, nothing of ours.

    Every server key is cleared, so none can be sent to the user's URL, and every connection
    goes through the address guard (``untrusted_endpoint``).
    """
    if kind not in KEY_FIELDS:
        raise ConfigError(f"an endpoint is {' or '.join(KEY_FIELDS)}, not {kind!r}")
    from mixchat.backends.guard import split_url

    split_url(url)  # an http(s) URL with a host, or AddressRefused now (addresses: at connect)
    keys: dict[str, Any] = {field: None for field in KEY_FIELDS.values()}
    keys[KEY_FIELDS[kind]] = key
    settings = base.model_copy(
        update={
            **_IDENTITY_RESET,
            **keys,
            "backend": kind,
            "base_url": url.strip(),
            "model": (model or "").strip() or None,
            "untrusted_endpoint": True,
            "models": {},
        }
    )
    return CatalogEntry(
        name=USER_ENDPOINT,
        display_name="Your endpoint",
        description=f"{kind} endpoint you added",
        settings=settings,
    )


#: The entry name of a user's own endpoint (never a catalog entry's name: those are TOML keys
#: the operator chose, and this one is refused there).
USER_ENDPOINT = "your-endpoint"
