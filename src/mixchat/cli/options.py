"""The model and sampling flags that ``serve``, ``chat`` and ``ask`` share, declared once.

:func:`with_settings` adds them to a command's signature (typer reads ``__signature__``) and
hands the command one validated :class:`~mixchat.config.Settings` instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from mixchat.config import Settings, load_settings

_PANEL = "Model"
_SAMPLING = "Sampling"


def _option(name: str, annotation: Any, *flags: str, panel: str = _PANEL) -> inspect.Parameter:
    field = Settings.model_fields[name]
    help_text = field.description or ""
    default = field.get_default(call_default_factory=False)
    if default not in (None, "", ...) and not callable(default):
        help_text += f"{' ' if help_text else ''}[default: {default}]"
    option = typer.Option(
        None, *(flags or (f"--{name.replace('_', '-')}",)), help=help_text,
        rich_help_panel=panel, show_default=False,
    )
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


SHARED_OPTIONS = [
    _option("backend", Optional[str], "--backend", "-b"),
    _option("model", Optional[str], "--model", "-m"),
    _option("model_file", Optional[str]),
    _option("base_url", Optional[str]),
    _option("system_prompt", Optional[str], "--system", "-s"),
    _option("n_ctx", Optional[int]),
    _option("n_gpu_layers", Optional[int]),
    _option("chat_format", Optional[str]),
    _option("quantization", Optional[str]),
    _option("dtype", Optional[str]),
    _option("data_dir", Optional[Path]),
    _option("temperature", Optional[float], panel=_SAMPLING),
    _option("top_p", Optional[float], panel=_SAMPLING),
    _option("top_k", Optional[int], panel=_SAMPLING),
    _option("max_tokens", Optional[int], "--max-tokens", "-n", panel=_SAMPLING),
    _option("repetition_penalty", Optional[float], panel=_SAMPLING),
    _option("seed", Optional[int], panel=_SAMPLING),
]


def with_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command(settings=..., ...)`` the shared flags; unset flags fall through to env/config."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    names = [p.name for p in SHARED_OPTIONS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(name) for name in names}
        return command(settings=load_settings(**overrides), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + SHARED_OPTIONS)  # type: ignore[attr-defined]
    return wrapper
