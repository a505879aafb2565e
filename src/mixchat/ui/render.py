"""Safe rendering of untrusted text: user messages, model replies, tool output, titles.

Panel's Markdown pane passes raw HTML through (markdown-it with ``html=True``), so a reply
containing ``<img src=x onerror=...>`` runs script in the browser. Here raw HTML is disabled
(it shows as text), markdown-it's link validation drops ``javascript:`` URLs, and math
rendering (which would fetch MathJax/KaTeX) is off. Code blocks are highlighted by Pygments.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import panel as pn

ASSETS = Path(__file__).parent / "assets"
#: URL prefix of the vendored static files (app.css, the Tabler icon font, offline.js).
ASSETS_ROUTE = "mixchat-assets"
#: The app's stylesheet, given to every chat message (Panel adds it to each shadow root).
#: A URL, not the CSS text: Panel would send inline CSS again with every new message.
APP_CSS = f"/{ASSETS_ROUTE}/app.css"

#: markdown-it options: no raw HTML, soft line breaks shown as breaks (chat text).
_MARKDOWN_OPTIONS: dict[str, Any] = {"html": False, "breaks": True}


def markdown_pane(text: str = "", *, streaming: bool = False, **params: Any) -> pn.pane.Markdown:
    """A Markdown pane that never renders raw HTML.

    ``streaming`` sends each update as the appended part of the HTML (Panel's
    ``enable_streaming``) instead of the whole text again.
    """
    return pn.pane.Markdown(
        text,
        renderer="markdown-it",
        renderer_options=dict(_MARKDOWN_OPTIONS),
        disable_math=True,
        disable_anchors=True,
        enable_streaming=streaming,
        sizing_mode="stretch_width",
        **params,
    )


def render_message(value: Any) -> pn.viewable.Viewable:
    """ChatMessage renderer for plain strings (the user's input): safe Markdown."""
    if isinstance(value, str):
        return markdown_pane(value)
    raise TypeError("not text")  # ChatMessage tries its other renderers


def text_html(text: str, css_class: str = "") -> str:
    """``text`` as inert HTML (escaped), optionally in a span with a class."""
    escaped = html.escape(text)
    return f'<span class="{css_class}">{escaped}</span>' if css_class else escaped


def code_block(text: str, language: str = "") -> str:
    """Markdown for ``text`` shown verbatim in a fenced block (tool input and output)."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"
