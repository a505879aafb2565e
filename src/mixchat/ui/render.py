"""Safe rendering of untrusted text outside the transcript (titles, sidebar notices).

Messages themselves are rendered in the browser by the transcript component (markdown-it
with raw HTML off, then DOMPurify; see ``transcript/transcript.js``). Here: escaping for the
few HTML panes of the sidebar, and where the vendored static files are served.
"""

from __future__ import annotations

import html
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
#: URL prefix of the vendored static files (app.css, the Tabler icon font, KaTeX's fonts).
ASSETS_ROUTE = "mixchat-assets"
#: The app's stylesheet for Panel components (Panel adds it to each shadow root).
#: A URL, not the CSS text: Panel would send inline CSS again with every update.
APP_CSS = f"/{ASSETS_ROUTE}/app.css"


def text_html(text: str, css_class: str = "") -> str:
    """``text`` as inert HTML (escaped), optionally in a span with a class."""
    escaped = html.escape(text)
    return f'<span class="{css_class}">{escaped}</span>' if css_class else escaped
