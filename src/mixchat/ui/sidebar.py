"""The settings sidebar: which catalog model answers, how it samples, and agent mode.

A session picks a model of the operator's catalog by its display name; the browser never sends
a path, a repository id or a URL that the server would use. Where the operator allows it
(``allow_user_endpoints``), a user may add their own endpoint (``user_endpoint``).
Changes take effect with the next message: every request reads :meth:`SettingsPanel.settings`.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from panel.viewable import Viewable

from mixchat.config import SamplingParams, Settings
from mixchat.config.catalog import (
    KEY_FIELDS,
    SAMPLING_FIELDS,
    USER_ENDPOINT,
    Catalog,
    CatalogEntry,
)
from mixchat.tools import Tool, registered_tools
from mixchat.ui.model_picker import ModelPicker, choices
from mixchat.ui.user_endpoint import UserEndpointForm

_SAMPLING = SAMPLING_FIELDS
_SLIDER_MAX_TOKENS = 4096


class SettingsPanel(param.Parameterized):
    """One session's settings, starting from the catalog's first model.

    The settings are parameters; their widgets are made only when their section is first
    opened (``sampling_section``, ``agent_section``): most pages never open those sections, and
    each widget costs a new page server time.
    """

    #: A parameter's doc is its widget's tooltip: written for the user.
    system_prompt = param.String(
        default="", doc="Sent before the conversation with every message; saved with it."
    )
    temperature = param.Number(default=0.7, bounds=(0.0, 2.0), step=0.05)
    top_p = param.Number(default=0.95, bounds=(0.05, 1.0), step=0.01)
    top_k = param.Integer(default=50, bounds=(0, 200))
    max_tokens = param.Integer(default=256, bounds=(16, _SLIDER_MAX_TOKENS), step=16)
    repetition_penalty = param.Number(default=1.0, bounds=(0.5, 2.0), step=0.05)
    agent = param.Boolean(default=False, doc="The model may use tools, step by step.")
    tools = param.ListSelector(default=[], objects=[], doc="The tools the agent may use.")

    def __init__(self, settings: Settings, catalog: Catalog | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.base = settings
        self.catalog = catalog or Catalog.from_settings(settings)
        self._tools = {tool.name: tool for tool in registered_tools()}
        options = self.catalog.choices()
        if settings.allow_user_endpoints:
            options = {**options, "Your endpoint": USER_ENDPOINT}
        #: The Model section (the preset list in it is PresetsPanel's).
        self.picker = ModelPicker(models=choices(options), model=self.catalog.default.name)
        #: A user's own endpoint: only where the operator allows it.
        self.endpoint = (
            UserEndpointForm(settings, self._describe) if settings.allow_user_endpoints else None
        )
        self.system_prompt = settings.system_prompt
        self.param.tools.objects = list(self._tools)
        self.tools = list(self._tools)
        self._model_changed()
        self.picker.param.watch(self._model_changed, "model")

    # -- what a request uses
    def entry(self) -> CatalogEntry:
        """The model this session talks to: a catalog entry, or the user's own endpoint.

        Whatever value the browser sends for the select, only a catalog name (or the user's
        endpoint, where allowed and set up) is ever used; anything else means the default.
        """
        own = self._own()
        if self.picker.model == USER_ENDPOINT and own is not None:
            return own
        return self.catalog.get(self.picker.model) or self.catalog.default

    def _own(self) -> CatalogEntry | None:
        """The user's own endpoint, where allowed and set up."""
        return self.endpoint.entry if self.endpoint is not None else None

    def settings(self) -> Settings:
        """The chosen entry's settings with this session's system prompt and sampling."""
        return self.entry().for_request(
            self.system_prompt or "", {name: getattr(self, name) for name in _SAMPLING}
        )

    def sampling(self) -> SamplingParams:
        return self.settings().sampling()

    def selected_tools(self) -> list[Tool]:
        return [self._tools[name] for name in self.tools if name in self._tools]

    def snapshot(self) -> dict[str, Any]:
        """The settings a conversation is saved with (no secrets, no URL)."""
        return {name: getattr(self, name) for name in _SAMPLING} | {
            "agent": self.agent,
            "tools": list(self.tools),
            "model_entry": self.entry().name,
        }

    def restore(
        self, backend: str, model: str | None, system_prompt: str, saved: dict[str, Any]
    ) -> None:
        """Show the settings a conversation was saved with (a model no longer in the catalog:
        the current one stays)."""
        if self.catalog.get(saved.get("model_entry")) is not None:
            self.picker.model = saved["model_entry"]
        self.system_prompt = system_prompt
        for name in _SAMPLING:
            if isinstance(saved.get(name), int | float):
                self.set_sampling(name, saved[name])
        if "agent" in saved:
            self.agent = bool(saved["agent"])
        if "tools" in saved:
            self.tools = [t for t in saved["tools"] if t in self._tools]

    def reset_sampling(self) -> None:
        """The chosen model's defaults (the original tutorial's chat settings unless the
        operator set others)."""
        defaults = self.entry().settings
        for name in _SAMPLING:
            self.set_sampling(name, getattr(defaults, name))

    def set_sampling(self, name: str, value: float) -> None:
        """Set one sampling setting, kept within its slider's range."""
        low, high = self.param[name].bounds
        clamped = min(max(value, low), high)
        setattr(
            self, name, int(clamped) if isinstance(self.param[name], param.Integer) else clamped
        )

    # -- choosing a model
    def _model_changed(self, *_: Any) -> None:
        entry = self._describe()
        cap = entry.max_tokens_cap(self.base.limits.max_tokens)
        low = self.param.max_tokens.bounds[0]
        self.param.max_tokens.bounds = (low, max(low, min(_SLIDER_MAX_TOKENS, cap)))
        self.reset_sampling()

    def _describe(self) -> CatalogEntry:
        entry = self.entry()
        self.picker.about = entry.description
        if self.picker.model == USER_ENDPOINT and self._own() is None:
            self.picker.about = (
                f"Your endpoint is not set up yet: {entry.display_name} answers until it is."
            )
        return entry

    # -- layout
    def model_section(self) -> Viewable:
        """The Model section: the model and preset lists, then (where the operator allows it)
        the user's own endpoint."""
        if self.endpoint is None:
            return self.picker
        return pn.Column(self.picker, *self.endpoint.widgets(), sizing_mode="stretch_width")

    def sampling_section(self) -> pn.Column:
        """The Generation section's widgets (made now: see the class docstring)."""
        reset = pn.widgets.Button(
            label="Reset to defaults", icon="restore", color="light", sizing_mode="stretch_width"
        )
        reset.on_click(lambda _: self.reset_sampling())
        slider = {"sizing_mode": "stretch_width"}
        return pn.Column(
            pn.widgets.TextAreaInput.from_param(
                self.param.system_prompt,
                name="System prompt",
                auto_grow=True,
                max_rows=8,
                placeholder="e.g. You are a concise assistant.",
                sizing_mode="stretch_width",
            ),
            pn.widgets.FloatSlider.from_param(self.param.temperature, name="Temperature", **slider),
            pn.widgets.FloatSlider.from_param(self.param.top_p, name="Top p", **slider),
            pn.widgets.IntSlider.from_param(self.param.top_k, name="Top k (0: off)", **slider),
            pn.widgets.IntSlider.from_param(self.param.max_tokens, name="Max new tokens", **slider),
            pn.widgets.FloatSlider.from_param(
                self.param.repetition_penalty, name="Repetition penalty", **slider
            ),
            reset,
            sizing_mode="stretch_width",
        )

    def agent_section(self) -> pn.Column:
        """The Agent section's widgets (made now: see the class docstring)."""
        return pn.Column(
            pn.widgets.Switch.from_param(self.param.agent, name="Agent mode", margin=(8, 10)),
            pn.pane.HTML(
                "The model may use tools, step by step.",
                css_classes=["mixchat-hint"],
                margin=(0, 10),
            ),
            pn.widgets.CheckBoxGroup.from_param(self.param.tools, name="Tools", inline=True),
            sizing_mode="stretch_width",
        )


__all__ = ["KEY_FIELDS", "SettingsPanel"]
