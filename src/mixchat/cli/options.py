"""The model and sampling flags that ``serve``, ``chat`` and ``ask`` share, declared once.

:func:`with_settings` adds them to a command's signature (typer reads ``__signature__``) and
hands the command one validated :class:`~mixchat.config.Settings` instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from mixchat.config import Settings, load_settings

_PANEL = "Model"
#: Flags that name one model: given, they replace the config file's catalog.
_CATALOG_FLAGS = ("backend", "model", "model_file", "base_url")
_SAMPLING = "Sampling"


def _option(name: str, annotation: Any, *flags: str, panel: str = _PANEL) -> inspect.Parameter:
    field = Settings.model_fields[name]
    help_text = field.description or ""
    default = field.get_default(call_default_factory=False)
    if default not in (None, "", ...) and not callable(default):
        help_text += f"{' ' if help_text else ''}[default: {default}]"
    option = typer.Option(
        None,
        *(flags or (f"--{name.replace('_', '-')}",)),
        help=help_text,
        rich_help_panel=panel,
        show_default=False,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


SHARED_OPTIONS = [
    _option("backend", str | None, "--backend", "-b"),
    _option("model", str | None, "--model", "-m"),
    _option("model_file", str | None),
    _option("base_url", str | None),
    _option("system_prompt", str | None, "--system", "-s"),
    _option("n_ctx", int | None),
    _option("n_gpu_layers", int | None),
    _option("chat_format", str | None),
    _option("quantization", str | None),
    _option("dtype", str | None),
    _option("data_dir", Path | None),
    _option("temperature", float | None, panel=_SAMPLING),
    _option("top_p", float | None, panel=_SAMPLING),
    _option("top_k", int | None, panel=_SAMPLING),
    _option("max_tokens", int | None, "--max-tokens", "-n", panel=_SAMPLING),
    _option("repetition_penalty", float | None, panel=_SAMPLING),
    _option("seed", int | None, panel=_SAMPLING),
    _option("verbose", bool | None, "--verbose", "-v", panel="Output"),
]


def with_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command(settings=..., ...)`` the shared flags; unset flags fall through to env/config."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    names = [p.name for p in SHARED_OPTIONS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(name) for name in names}
        settings = load_settings(**overrides)
        if any(overrides[name] is not None for name in _CATALOG_FLAGS):
            # --backend/--model/--base-url make a one-entry catalog, replacing the file's
            settings = settings.model_copy(update={"models": {}})
        quiet_llama_cpp(settings)
        return command(settings=settings, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + SHARED_OPTIONS)  # type: ignore[attr-defined]
    return wrapper


_QUIET: Any = None  # the log callback, kept alive as long as llama.cpp may call it


def quiet_llama_cpp(settings: Settings) -> None:
    """Keep llama.cpp's own log lines off stderr unless ``--verbose`` (mixchat says what
    matters: which model loaded, with which context)."""
    global _QUIET
    backends = {settings.backend, *(str(m.get("backend")) for m in settings.models.values())}
    if settings.verbose or "llamacpp" not in backends:
        return
    try:
        import ctypes

        import llama_cpp
        import llama_cpp._logger  # noqa: F401  (installs its own callback on import: replace it)
    except ImportError:  # the backend will say which extra to install
        return
    if _QUIET is None:
        _QUIET = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))
