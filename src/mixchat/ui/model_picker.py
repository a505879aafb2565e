"""The Model section as one browser component: which catalog model answers, and a preset.

Two Panel ``Select`` widgets with their hint lines, a tooltip and a layout made seven Bokeh
models (and two stylesheets) of every new page; this draws two native ``<select>`` elements
and their lines from a few parameters. The browser sets ``model`` and ``preset``; whatever it
sends, :class:`~mixchat.ui.sidebar.SettingsPanel` uses only a catalog name (else the default)
and :class:`~mixchat.ui.presets.PresetsPanel` only a preset it lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import param
from panel.custom import JSComponent

from mixchat.ui.render import ASSETS_ROUTE

HERE = Path(__file__).parent


def choices(options: dict[str, str]) -> list[list[str]]:
    """``{label: value}`` (the catalog's, the presets') as the browser reads it."""
    return [[value, label] for label, value in options.items()]


class ModelPicker(JSComponent):
    """The model and preset selects, with a line under each (text, never HTML)."""

    models = param.List(default=[], doc="[value, label] per model, in order")
    model = param.String(default="", doc="the chosen model's value (the browser sets it)")
    about = param.String(default="", doc="the line under the model: what it is")
    presets = param.List(default=[], doc="[value, label] per preset, '(none)' first")
    preset = param.String(default="", doc="the chosen preset's value (the browser sets it)")
    preset_about = param.String(default="", doc="the line under the preset: what it set")
    preset_help = param.String(default="", doc="the preset list's tooltip")

    _esm: ClassVar[Path] = HERE / "model_picker.js"
    _stylesheets: ClassVar[list[str]] = [f"/{ASSETS_ROUTE}/sections.css"]

    def __init__(self, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(**params)
