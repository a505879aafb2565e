"""The settings sidebar: which catalog model answers, how it samples, and agent mode.

A session picks a model of the operator's catalog by its display name; the browser never sends
a path, a repository id or a URL that the server would use. Where the operator allows it
(``allow_user_endpoints``), a user may add their own endpoint: its key is moved into a
server-side ``SecretStr`` and the widget is cleared at once, so the key is never sent back to
the browser, echoed or logged, and no server key is ever sent to that URL.
Changes take effect with the next message: every request reads :meth:`SettingsPanel.settings`.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from pydantic import SecretStr

from mixchat.config import SamplingParams, Settings
from mixchat.config.catalog import (
    KEY_FIELDS,
    SAMPLING_FIELDS,
    USER_ENDPOINT,
    Catalog,
    CatalogEntry,
    user_entry,
)
from mixchat.errors import MixchatError
from mixchat.tools import Tool, registered_tools

_SAMPLING = SAMPLING_FIELDS
_SLIDER_MAX_TOKENS = 4096


class SettingsPanel(param.Parameterized):
    """Widgets for one session's settings, starting from the catalog's first model."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.base = settings
        self.catalog = catalog or Catalog.from_settings(settings)
        self._key: SecretStr | None = None
        self._endpoint: CatalogEntry | None = None
        self._tools = {tool.name: tool for tool in registered_tools()}
        options = self.catalog.choices()
        if settings.allow_user_endpoints:
            options = {**options, "Your endpoint": USER_ENDPOINT}
        self.model = pn.widgets.Select(
            label="Model",
            options=options,
            value=self.catalog.default.name,
            sizing_mode="stretch_width",
        )
        self.about = pn.pane.HTML("", css_classes=["mixchat-hint"], margin=(0, 10))
        # a user's own endpoint (shown only where the operator allows it)
        self.endpoint_kind = pn.widgets.Select(
            label="Your endpoint's API",
            options={"OpenAI-compatible": "openai", "Mistral": "mistral"},
            sizing_mode="stretch_width",
        )
        self.base_url = pn.widgets.TextInput(
            label="Your endpoint's URL",
            placeholder="https://api.example.com/v1",
            sizing_mode="stretch_width",
        )
        self.endpoint_model = pn.widgets.TextInput(
            label="Its model", placeholder="the server's first model", sizing_mode="stretch_width"
        )
        self.api_key = pn.widgets.PasswordInput(
            label="Your API key", placeholder="paste a key", sizing_mode="stretch_width"
        )
        self.key_status = pn.pane.HTML("", css_classes=["mixchat-hint"], margin=(0, 10))
        self.system_prompt = pn.widgets.TextAreaInput(
            label="System prompt",
            value=settings.system_prompt,
            auto_grow=True,
            max_rows=8,
            placeholder="e.g. You are a concise assistant.",
            sizing_mode="stretch_width",
        )
        self.temperature = pn.widgets.FloatSlider(
            label="Temperature", start=0.0, end=2.0, step=0.05
        )
        self.top_p = pn.widgets.FloatSlider(label="Top p", start=0.05, end=1.0, step=0.01)
        self.top_k = pn.widgets.IntSlider(label="Top k (0: off)", start=0, end=200, step=1)
        self.max_tokens = pn.widgets.IntSlider(
            label="Max new tokens", start=16, end=_SLIDER_MAX_TOKENS, step=16
        )
        self.repetition_penalty = pn.widgets.FloatSlider(
            label="Repetition penalty", start=0.5, end=2.0, step=0.05
        )
        self.reset = pn.widgets.Button(
            label="Reset to defaults", icon="restore", color="light", sizing_mode="stretch_width"
        )
        self.agent = pn.widgets.Switch(label="Agent mode", value=False, margin=(8, 10))
        self.tools = pn.widgets.CheckBoxGroup(
            label="Tools", options=list(self._tools), value=list(self._tools), inline=True
        )
        self._model_changed()
        self.reset.on_click(lambda _: self.reset_sampling())
        self.api_key.param.watch(self._take_key, "value")
        self.model.param.watch(self._model_changed, "value")
        self.endpoint_kind.param.watch(self._endpoint_changed, "value")
        self.base_url.param.watch(self._endpoint_changed, "value")
        self.endpoint_model.param.watch(self._endpoint_changed, "value")
        self._show_key_status()

    # -- what a request uses
    def entry(self) -> CatalogEntry:
        """The model this session talks to: a catalog entry, or the user's own endpoint.

        Whatever value the browser sends for the select, only a catalog name (or the user's
        endpoint, where allowed and set up) is ever used; anything else means the default.
        """
        if self.model.value == USER_ENDPOINT and self._endpoint is not None:
            return self._endpoint
        return self.catalog.get(self.model.value) or self.catalog.default

    def settings(self) -> Settings:
        """The chosen entry's settings with this session's system prompt and sampling."""
        return self.entry().for_request(
            self.system_prompt.value or "", {name: getattr(self, name).value for name in _SAMPLING}
        )

    def sampling(self) -> SamplingParams:
        return self.settings().sampling()

    def selected_tools(self) -> list[Tool]:
        return [self._tools[name] for name in self.tools.value if name in self._tools]

    def snapshot(self) -> dict[str, Any]:
        """The settings a conversation is saved with (no secrets, no URL)."""
        return {name: getattr(self, name).value for name in _SAMPLING} | {
            "agent": self.agent.value,
            "tools": list(self.tools.value),
            "model_entry": self.entry().name,
        }

    def restore(
        self, backend: str, model: str | None, system_prompt: str, saved: dict[str, Any]
    ) -> None:
        """Show the settings a conversation was saved with (a model no longer in the catalog:
        the current one stays)."""
        if self.catalog.get(saved.get("model_entry")) is not None:
            self.model.value = saved["model_entry"]
        self.system_prompt.value = system_prompt
        for name in _SAMPLING:
            if isinstance(saved.get(name), int | float):
                widget = getattr(self, name)
                widget.value = min(max(saved[name], widget.start), widget.end)
        if "agent" in saved:
            self.agent.value = bool(saved["agent"])
        if "tools" in saved:
            self.tools.value = [t for t in saved["tools"] if t in self._tools]

    def reset_sampling(self) -> None:
        """The chosen model's defaults (the original tutorial's chat settings unless the
        operator set others)."""
        defaults = self.entry().settings
        for name in _SAMPLING:
            widget = getattr(self, name)
            widget.value = min(max(getattr(defaults, name), widget.start), widget.end)

    # -- choosing a model
    def _model_changed(self, *_: Any) -> None:
        entry = self._describe()
        cap = entry.max_tokens_cap(self.base.limits.max_tokens)
        self.max_tokens.end = max(self.max_tokens.start, min(_SLIDER_MAX_TOKENS, cap))
        self.reset_sampling()

    def _describe(self) -> CatalogEntry:
        entry = self.entry()
        self.about.object = _escape(entry.description)
        if self.model.value == USER_ENDPOINT and self._endpoint is None:
            self.about.object = _escape(
                f"Your endpoint is not set up yet: {entry.display_name} answers until it is."
            )
        return entry

    def _endpoint_changed(self, *_: Any) -> None:
        url = (self.base_url.value or "").strip()
        if not self.base.allow_user_endpoints or not url:
            self._endpoint = None
        else:
            try:
                self._endpoint = user_entry(
                    self.base,
                    self.endpoint_kind.value,
                    url,
                    self.endpoint_model.value,
                    self._key,
                )
            except MixchatError as error:
                self._endpoint = None
                self.key_status.object = _escape(str(error))
                self._describe()
                return
        self._show_key_status()
        self._describe()

    # -- the API key never goes back to the browser
    def _take_key(self, event: param.parameterized.Event) -> None:
        if not event.new:
            return
        self.api_key.value = ""
        if not self.base.allow_user_endpoints:
            return
        self._key = SecretStr(event.new.strip())
        self._endpoint_changed()

    def _show_key_status(self, *_: Any) -> None:
        if self._key is not None:
            self.key_status.object = "Key set (kept on the server)."
        else:
            self.key_status.object = "No key set."

    def has_key(self) -> bool:
        return self._key is not None

    # -- layout
    def model_section(self, *more: Any) -> pn.Column:
        """The Model section: the catalog's models, then ``more`` (the preset picker)."""
        parts: list[Any] = [self.model, self.about]
        if self.base.allow_user_endpoints:
            parts += [
                self.endpoint_kind,
                self.base_url,
                self.endpoint_model,
                self.api_key,
                self.key_status,
            ]
        return pn.Column(*parts, *more, sizing_mode="stretch_width")

    def sampling_section(self) -> pn.Column:
        return pn.Column(
            self.system_prompt,
            self.temperature,
            self.top_p,
            self.top_k,
            self.max_tokens,
            self.repetition_penalty,
            self.reset,
            sizing_mode="stretch_width",
        )

    def agent_section(self) -> pn.Column:
        return pn.Column(
            self.agent,
            pn.pane.HTML(
                "The model may use tools, step by step.",
                css_classes=["mixchat-hint"],
                margin=(0, 10),
            ),
            self.tools,
            sizing_mode="stretch_width",
        )


def _escape(text: str) -> str:
    import html

    return html.escape(text)


__all__ = ["KEY_FIELDS", "SettingsPanel"]
