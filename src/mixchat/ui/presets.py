"""Presets in the web app: pick one in the sidebar or with ``/NAME`` at the start of a
message; save the sidebar's settings as one of your own.

Applying a preset sets the sidebar (model, system prompt, sampling), which every request
reads, so the next reply uses it and the conversation is saved with it. The operator's presets
(the config's ``[presets.NAME]``) are read-only; they work even with history off.
"""

from __future__ import annotations

from typing import Any

import panel as pn
from pydantic import ValidationError

from mixchat.config.catalog import SAMPLING_FIELDS
from mixchat.config.presets import Preset, operator_presets, split_command
from mixchat.errors import MixchatError
from mixchat.ui.model_picker import choices
from mixchat.ui.render import text_html
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.storage import StoreGateway
from mixchat.ui.transcript.component import ActionHandler

NONE = ""


class PresetsPanel:
    """The preset picker (in the Model card) and the save/delete row (in Generation)."""

    def __init__(self, sidebar: SettingsPanel, gateway: StoreGateway) -> None:
        self.sidebar = sidebar
        self.gateway = gateway
        self.presets: dict[str, Preset] = dict(operator_presets(gateway.settings))
        self.picker = sidebar.picker  # the preset list is in the Model section
        self.picker.param.update(
            presets=choices(self._options()),
            preset=NONE,
            preset_help="A system prompt, model and sampling in one go; /NAME at the start "
            "of a message applies one too",
        )
        #: The save row's notice (its widgets are made when the Generation section opens).
        self.notice: pn.pane.HTML | None = None
        self.picker.param.watch(self._picked, "preset")

    # -- layout
    def save_section(self) -> pn.Column:
        """Save the sidebar's settings as a preset, or delete the picked one (made when the
        Generation section first opens)."""
        name = pn.widgets.TextInput(
            name="Save these settings as a preset",
            placeholder="a name, e.g. concise",
            sizing_mode="stretch_width",
        )
        save = pn.widgets.Button(label="Save preset", icon="device-floppy", color="light")
        delete = pn.widgets.Button(label="Delete preset", icon="trash", color="light")
        self.notice = pn.pane.HTML("", css_classes=["mixchat-hint"], margin=(0, 10))

        async def saved(_: Any) -> None:
            await self.save_current(name.value or "")

        async def deleted(_: Any) -> None:
            await self.delete_picked()

        save.on_click(saved)
        delete.on_click(deleted)
        return pn.Column(name, pn.Row(save, delete), self.notice, sizing_mode="stretch_width")

    # -- the list
    def _options(self) -> dict[str, str]:
        shown = {"(none)": NONE}
        for preset in self.presets.values():
            mark = " (operator)" if preset.operator else ""
            shown[f"{preset.name}{mark}"] = preset.name
        return shown

    async def refresh(self) -> None:
        """The operator's presets and this user's (at page load and after a change)."""
        found = await self.gateway.list_presets()
        if found is not None:
            self.presets = {preset.name: preset for preset in found}
        options = choices(self._options())
        if options != self.picker.presets:
            self.picker.presets = options

    # -- applying one
    def apply(self, name: str) -> Preset | None:
        """Set the sidebar to the preset (its model first: choosing a model resets sampling)."""
        preset = self.presets.get(name)
        if preset is None:
            return None
        sidebar = self.sidebar
        if preset.model is not None:
            if sidebar.catalog.get(preset.model) is None:
                self.picker.preset_about = (
                    f"Preset {name}: its model {preset.model!r} is not in the catalog."
                )
                return None
            sidebar.picker.model = preset.model
        if preset.system_prompt is not None:
            sidebar.system_prompt = preset.system_prompt
        for field, value in preset.sampling().items():
            sidebar.set_sampling(field, value)
        self.picker.preset_about = f"Preset {name}: {preset.summary()}"
        if self.picker.preset != name:
            self.picker.preset = name
        return preset

    def _picked(self, event: Any) -> None:
        if event.new:
            self.apply(event.new)
        else:
            self.picker.preset_about = ""

    def intercept(self, handler: ActionHandler | None, busy: Any) -> ActionHandler:
        """``/NAME rest`` sent from the input box: apply the preset, send ``rest``."""

        def on_action(kind: str, data: dict[str, Any]) -> None:
            if kind == "send" and not busy():
                name, rest = split_command(str(data.get("text", "")), self.presets)
                if name is not None:
                    self.apply(name)
                    if not rest.strip():
                        return  # only the preset: nothing to send
                    data = {**data, "text": rest, "rewritten": True}  # shown without /NAME
            if handler is not None:
                handler(kind, data)

        return on_action

    # -- saving and deleting the user's own
    def current(self, name: str) -> Preset:
        """The sidebar's settings as a preset called ``name`` (ValueError if not a name)."""
        sidebar = self.sidebar
        values = {field: getattr(sidebar, field) for field in SAMPLING_FIELDS}
        return Preset(
            name=name,
            system_prompt=sidebar.system_prompt or "",
            model=sidebar.entry().name if sidebar.catalog.get(sidebar.picker.model) else None,
            **values,
        )

    async def save_current(self, name: str) -> Preset | None:
        try:
            preset = self.current(name.strip())
            saved = await self.gateway.save_preset(preset)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            self._say(
                _NAME_RULE
                if where == "name"
                else f"{where}: {first['msg'].removeprefix('Value error, ')}"
            )
            return None
        except MixchatError as error:
            self._say(str(error))
            return None
        await self.refresh()
        self.picker.preset = saved.name
        self._say(f"Saved preset {saved.name}: /{saved.name} applies it.")
        return saved

    async def delete_picked(self) -> None:
        name = self.picker.preset
        if not name:
            self._say("Pick the preset to delete first.")
            return
        try:
            await self.gateway.delete_preset(name)
        except MixchatError as error:
            self._say(str(error))
            return
        self.picker.preset = NONE
        await self.refresh()
        self._say(f"Deleted preset {name}.")

    def _say(self, text: str) -> None:
        if self.notice is not None:
            self.notice.object = text_html(text)


_NAME_RULE = "A preset's name is letters, digits, - and _ (up to 40), with no spaces."
