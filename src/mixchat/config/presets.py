"""Presets: a named system prompt, catalog model and sampling, applied in one go.

The operator writes some in the config file (read-only for users)::

    [presets.concise]
    description = "Short answers"
    system_prompt = "Answer in one or two sentences."
    model = "mixtral"          # a [models.NAME] of the catalog; omitted: the current model
    temperature = 0.2
    max_tokens = 200

Users save their own (the store keeps them per user, ``mixchat.store.presets``). A preset is
picked in the web app's sidebar, with ``/NAME`` at the start of a message, with
``mixchat chat --preset NAME`` / ``mixchat ask --preset NAME``, or ``/preset NAME`` in the
terminal chat.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mixchat.config import SamplingParams, Settings
from mixchat.config.catalog import SAMPLING_FIELDS, Catalog, CatalogEntry
from mixchat.errors import ConfigError

#: A preset's name: what follows the slash in ``/NAME``.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class Preset(BaseModel):
    """One preset. Fields left out keep what the chat has (the model, each sampling value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    system_prompt: str | None = None
    model: str | None = Field(None, description="a catalog entry's name")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    #: The operator's (from the config file): users cannot change or delete it.
    operator: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                "a preset's name is letters, digits, - and _ (up to 40), starting with a "
                "letter or digit"
            )
        return value

    def model_post_init(self, _: Any) -> None:
        SamplingParams(**self.sampling())  # in range, or ValidationError now

    def sampling(self) -> dict[str, Any]:
        """The sampling values it sets."""
        return {
            name: getattr(self, name) for name in SAMPLING_FIELDS if getattr(self, name) is not None
        }

    def summary(self) -> str:
        """One line: what it sets."""
        parts = [f"model {self.model}"] if self.model else []
        parts += [f"{name.replace('_', ' ')} {value}" for name, value in self.sampling().items()]
        if self.system_prompt:
            parts.append(f"system prompt: {_short(self.system_prompt)}")
        return ", ".join(parts) or "nothing"

    def stored(self) -> dict[str, Any]:
        """What the store keeps (the name and the operator mark are not part of it)."""
        return self.model_dump(exclude={"name", "operator"}, exclude_none=True)

    def entry(self, catalog: Catalog) -> CatalogEntry | None:
        """The catalog entry it picks (None: it keeps the current one); ConfigError if gone."""
        if self.model is None:
            return None
        entry = catalog.get(self.model)
        if entry is None:
            raise ConfigError(
                f"preset {self.name}: no model {self.model!r} in the catalog "
                f"(choose one of {', '.join(catalog.entries)})"
            )
        return entry

    def apply(self, settings: Settings, catalog: Catalog | None = None) -> Settings:
        """``settings`` with this preset's model, system prompt and sampling."""
        entry = self.entry(catalog or Catalog.from_settings(settings))
        base = entry.settings if entry is not None else settings
        update: dict[str, Any] = dict(self.sampling())
        if self.system_prompt is not None:
            update["system_prompt"] = self.system_prompt
        if entry is not None and "max_tokens" in update:
            update["max_tokens"] = min(update["max_tokens"], entry.max_tokens_cap())
        return base.model_copy(update=update)


def _short(text: str, limit: int = 48) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def preset_from(name: str, data: Any, *, operator: bool = False) -> Preset:
    """A validated preset; ConfigError with one line saying what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"preset {name}: must be a table ([presets.NAME] with system_prompt = ...)"
        )
    try:
        return Preset.model_validate({**data, "name": name, "operator": operator})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "it"
        raise ConfigError(
            f"preset {name}: {where}: {first['msg'].removeprefix('Value error, ')}"
        ) from None


def operator_presets(settings: Settings) -> dict[str, Preset]:
    """The config file's ``[presets.NAME]`` tables; ConfigError lists every bad one."""
    found: dict[str, Preset] = {}
    problems = []
    for name, data in settings.presets.items():
        try:
            found[name] = preset_from(name, data, operator=True)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("; ".join(problems))
    return found


def split_command(text: str, names: set[str] | dict[str, Any]) -> tuple[str | None, str]:
    """``/NAME rest`` with a known preset NAME: (NAME, rest); otherwise (None, text)."""
    match = re.match(r"^/([A-Za-z0-9][A-Za-z0-9_-]{0,39})(?:\s+|$)", text)
    if match is None or match.group(1) not in names:
        return None, text
    return match.group(1), text[match.end() :]
