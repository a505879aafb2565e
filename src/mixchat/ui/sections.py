"""The sidebar's sections (Conversations, Model, Generation, ...) as one browser component.

A ``pn.Card`` per section cost the page ~4 Bokeh models each (card, header row, title, the
layout inside), and every model costs a new page ~3-5 ms of server CPU. Here the sections are
one ``JSComponent`` drawing native ``<details>``/``<summary>`` elements (keyboard and screen
reader support for free), and a section's body (Panel widgets) is added to the page only when
the section is first opened (and, given a function, made then): a page that nobody opens the
Agent section of never builds its widgets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import param
from panel.custom import Children, JSComponent
from panel.viewable import Viewable

from mixchat.ui.render import ASSETS_ROUTE

HERE = Path(__file__).parent


@dataclass
class Section:
    """One section: its title, what it holds (or what makes it, when first opened), whether
    it starts open, and who hears it open (True) and close (False), e.g. a view that reads the
    store only while seen."""

    title: str
    body: Viewable | Callable[[], Viewable]
    open: bool = False
    on_toggle: Callable[[bool], Awaitable[None]] | None = None

    def made(self) -> Viewable:
        """The body, made on first use when it is a function."""
        if not isinstance(self.body, Viewable):
            self.body = self.body()
        return self.body


class Sections(JSComponent):
    """The sections on screen; the browser says which are open, the server adds the bodies."""

    titles = param.List(default=[], doc="each section's title, in order")
    open = param.List(default=[], doc="each section's open state (the browser sets it)")
    loaded = param.List(default=[], doc="the index of each section whose body is in bodies")
    bodies = Children(default=[], doc="the bodies of the sections opened so far")

    _esm: ClassVar[Path] = HERE / "sections.js"
    _stylesheets: ClassVar[list[str]] = [f"/{ASSETS_ROUTE}/sections.css"]

    def __init__(self, sections: list[Section], **params: Any) -> None:
        self._sections = sections
        shown = [index for index, section in enumerate(sections) if section.open]
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(
            titles=[section.title for section in sections],
            open=[section.open for section in sections],
            loaded=shown,
            bodies=[sections[index].made() for index in shown],
            **params,
        )
        self._shown = [section.open for section in sections]  # as last accepted
        self.param.watch(self._toggled, "open")

    def opened(self, title: str) -> bool:
        """Whether the section of this title is open (for tests)."""
        return bool(self.open[self.titles.index(title)])

    async def _toggled(self, event: param.parameterized.Event) -> None:
        new = [bool(state) for state in event.new or []]
        if len(new) != len(self._sections):  # not a list the page could have sent
            self.open = self._shown
            return
        changed = [i for i, state in enumerate(new) if state != self._shown[i]]
        self._shown = new
        first = [i for i in changed if new[i] and i not in self.loaded]
        if first:
            self.param.update(
                loaded=[*self.loaded, *first],
                bodies=[*self.bodies, *(self._sections[i].made() for i in first)],
            )
        for index in changed:
            hook = self._sections[index].on_toggle
            if hook is not None:
                await hook(new[index])
