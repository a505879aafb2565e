"""What the sidebar shows of the team server: your own usage, and for admins, the status view
(the catalog, the models loaded and their queues, the open sessions, tokens per user).

Every name shown comes from a user or the config, so all of it is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

import panel as pn

from mixchat import backends
from mixchat.accounting import Accounting, start_of_day
from mixchat.config.catalog import Catalog
from mixchat.store import UsageTotal
from mixchat.ui.team import SESSIONS

_TABLE_CSS = "font-size: 0.85em; border-collapse: collapse; width: 100%"


def table(header: list[str], rows: Sequence[Sequence[object]], css_class: str) -> str:
    """An HTML table of escaped cells."""
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return (
        f"<table class='{css_class}' style='{_TABLE_CSS}'><tr>{head}</tr>{body}</table>"
        if rows
        else "<p><i>none</i></p>"
    )


def usage_rows(totals: list[UsageTotal], with_user: bool) -> list[list[object]]:
    return [
        ([t.owner] if with_user else [])
        + [t.model, t.requests, t.prompt_tokens, t.completion_tokens, t.total_tokens]
        for t in totals
    ]


class UsageView:
    """One user's own tokens, today and in all, per model."""

    def __init__(self, accounting: Accounting, user: str) -> None:
        self.accounting = accounting
        self.user = user
        #: Made when the section is first opened (``layout``): most pages never open it.
        self.pane: pn.pane.HTML | None = None
        #: The card is open: refresh after each exchange (a closed card is refreshed when
        #: opened, not at every exchange).
        self.shown = False

    def layout(self) -> pn.pane.HTML:
        self.pane = pn.pane.HTML("", css_classes=["mixchat-usage"], sizing_mode="stretch_width")
        return self.pane

    async def toggled(self, shown: bool) -> None:
        self.shown = shown
        if shown:
            await self.refresh()

    async def refresh(self) -> None:
        pane = self.pane
        if pane is None:
            return
        now = datetime.now(timezone.utc)
        today = await self.accounting.usage(self.user, start_of_day(now))
        total = await self.accounting.usage(self.user)
        header = ["model", "requests", "prompt", "reply", "total"]
        limits = self.accounting.limits
        notes = [
            f"{name.replace('_', ' ')}: {value}"
            for name, value in limits.model_dump().items()
            if value is not None
        ]
        pane.object = (
            f"<b>Today</b>{table(header, usage_rows(today, False), 'usage-today')}"
            f"<b>All time</b>{table(header, usage_rows(total, False), 'usage-total')}"
            f"<p>Your limits: {html.escape(', '.join(notes) or 'none')}</p>"
        )


class StatusView:
    """The admin's view of this server process."""

    def __init__(self, catalog: Catalog, accounting: Accounting) -> None:
        self.catalog = catalog
        self.accounting = accounting
        self.pane = pn.pane.HTML(
            "", css_classes=["mixchat-status-view"], sizing_mode="stretch_width"
        )
        self.button = pn.widgets.Button(
            label="Refresh", icon="refresh", color="light", sizing_mode="stretch_width"
        )
        self.button.on_click(self._clicked)

    async def _clicked(self, _: object) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        catalog = [
            [entry.name, entry.display_name, entry.backend, entry.settings.model or "default"]
            for entry in self.catalog.entries.values()
        ]
        loaded = []
        for instance in backends.instances():
            queue = instance.queue
            if queue is None:
                line = "no queue: serves requests side by side"
            else:
                waiting = ", ".join(f"{u}: {n}" for u, n in queue.waiting_by_user().items())
                line = f"running: {queue.running or '-'}; waiting: {waiting or 'none'}"
            loaded.append([instance.model_name, instance.name, instance.loaded, line])
        sessions = [[s.user, f"{s.opened:%H:%M:%S}", s.entry()] for s in list(SESSIONS.values())]
        in_flight = [[user, n] for user, n in self.accounting.in_flight.items()]
        today = start_of_day(datetime.now(timezone.utc))
        usage = await self.accounting.usage(None, today)
        self.pane.object = "".join(
            [
                f"<b>Catalog</b>{table(['name', 'shown as', 'backend', 'model'], catalog, 'status-catalog')}",
                f"<b>Models loaded</b>{table(['model', 'backend', 'loaded', 'queue'], loaded, 'status-models')}",
                f"<b>Active sessions ({len(sessions)})</b>{table(['user', 'since', 'model'], sessions, 'status-sessions')}",
                f"<b>Requests in flight</b>{table(['user', 'requests'], in_flight, 'status-in-flight')}",
                f"<b>Tokens today, per user</b>{table(['user', 'model', 'requests', 'prompt', 'reply', 'total'], usage_rows(usage, True), 'status-usage')}",
            ]
        )

    def layout(self) -> pn.Column:
        return pn.Column(self.button, self.pane, sizing_mode="stretch_width")
