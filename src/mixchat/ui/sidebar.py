"""The settings sidebar: which model answers, how it samples, and agent mode.

Changes take effect with the next message: every request reads :meth:`SettingsPanel.settings`.
An API key typed here is moved into a server-side ``SecretStr`` and the widget is cleared at
once, so the key is never sent back to the browser, echoed or logged.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from pydantic import SecretStr

from mixchat import backends
from mixchat.config import SamplingParams, Settings
from mixchat.tools import Tool, registered_tools

#: Backends that take an API key, and the Settings field that holds it.
KEY_FIELDS = {"mistral": "mistral_api_key", "openai": "openai_api_key"}
_SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "repetition_penalty")


class SettingsPanel(param.Parameterized):
    """Widgets for one session's settings, starting from the server's settings."""

    def __init__(self, settings: Settings, **params: Any) -> None:
        super().__init__(**params)
        self.base = settings
        self._keys: dict[str, SecretStr] = {}
        self._tools = {tool.name: tool for tool in registered_tools()}
        self.backend = pn.widgets.Select(
            label="Backend",
            options=backends.names(),
            value=settings.backend,
            sizing_mode="stretch_width",
        )
        self.model = pn.widgets.TextInput(
            label="Model",
            value=settings.model or "",
            placeholder="the backend's default",
            sizing_mode="stretch_width",
        )
        self.base_url = pn.widgets.TextInput(
            label="Server URL",
            value=settings.base_url or "",
            placeholder="the provider's default",
            sizing_mode="stretch_width",
        )
        self.api_key = pn.widgets.PasswordInput(
            label="API key", placeholder="paste a key", sizing_mode="stretch_width"
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
        self.max_tokens = pn.widgets.IntSlider(label="Max new tokens", start=16, end=4096, step=16)
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
        self.reset_sampling()
        self.reset.on_click(lambda _: self.reset_sampling())
        self.api_key.param.watch(self._take_key, "value")
        self.backend.param.watch(self._show_key_status, "value")
        self._show_key_status()

    # -- what a request uses
    def settings(self) -> Settings:
        """The server's settings with this session's choices applied."""
        backend = self.backend.value
        update: dict[str, Any] = {
            "backend": backend,
            "model": (self.model.value or "").strip() or None,
            "base_url": (self.base_url.value or "").strip() or self.base.base_url,
            "system_prompt": self.system_prompt.value,
            **{name: getattr(self, name).value for name in _SAMPLING},
        }
        if backend != self.base.backend and update["model"] == self.base.model:
            update["model"] = None  # the server's model belongs to the server's backend
        field = KEY_FIELDS.get(backend)
        if field and field in self._keys:
            update[field] = self._keys[field]
        return self.base.model_copy(update=update)

    def sampling(self) -> SamplingParams:
        return self.settings().sampling()

    def selected_tools(self) -> list[Tool]:
        return [self._tools[name] for name in self.tools.value if name in self._tools]

    def snapshot(self) -> dict[str, Any]:
        """The settings a conversation is saved with (no secrets)."""
        return {name: getattr(self, name).value for name in _SAMPLING} | {
            "agent": self.agent.value,
            "tools": list(self.tools.value),
            "base_url": (self.base_url.value or "").strip() or None,
        }

    def restore(
        self, backend: str, model: str | None, system_prompt: str, saved: dict[str, Any]
    ) -> None:
        """Show the settings a conversation was saved with."""
        if backend in self.backend.options:
            self.backend.value = backend
        self.model.value = model or ""
        self.system_prompt.value = system_prompt
        for name in _SAMPLING:
            if name in saved:
                widget = getattr(self, name)
                widget.value = min(max(saved[name], widget.start), widget.end)
        if "agent" in saved:
            self.agent.value = bool(saved["agent"])
        if "tools" in saved:
            self.tools.value = [t for t in saved["tools"] if t in self._tools]
        if saved.get("base_url"):
            self.base_url.value = saved["base_url"]

    def reset_sampling(self) -> None:
        """The original tutorial's chat settings (or the server's, where set)."""
        for name in _SAMPLING:
            widget = getattr(self, name)
            widget.value = min(max(getattr(self.base, name), widget.start), widget.end)

    # -- the API key never goes back to the browser
    def _take_key(self, event: param.parameterized.Event) -> None:
        if not event.new:
            return
        field = KEY_FIELDS.get(self.backend.value, "openai_api_key")
        self._keys[field] = SecretStr(event.new.strip())
        self.api_key.value = ""
        self._show_key_status()

    def _show_key_status(self, *_: Any) -> None:
        field = KEY_FIELDS.get(self.backend.value)
        if field is None:
            self.key_status.object = "No key needed for this backend."
        elif field in self._keys:
            self.key_status.object = "Key set (kept on the server)."
        elif getattr(self.base, field) is not None:
            self.key_status.object = "Using the server's key."
        else:
            self.key_status.object = "No key set."

    def has_key(self, field: str) -> bool:
        return field in self._keys

    # -- layout
    def model_section(self) -> pn.Column:
        return pn.Column(
            self.backend,
            self.model,
            self.base_url,
            self.api_key,
            self.key_status,
            sizing_mode="stretch_width",
        )

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
