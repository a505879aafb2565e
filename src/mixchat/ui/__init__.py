"""The web app: a Panel chat page served to many browser sessions at once.

    mixchat.ui.serve(load_settings(backend="echo"))   # http://localhost:5006

Nothing outside this package imports Panel.
"""

from __future__ import annotations

from mixchat.ui.app import create_app
from mixchat.ui.server import serve

__all__ = ["create_app", "serve"]
