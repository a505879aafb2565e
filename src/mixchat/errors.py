"""mixchat's errors: library failures are translated into these at each boundary.

The UI and the CLI show ``str(error)`` as one line, so every message says what went
wrong and what to do, and never contains a secret (an API key) or a traceback.

    MixchatError
    ├── ConfigError          a setting has a value that is not allowed
    ├── MissingDependency    an optional package is not installed
    ├── ModelLoadError       a model file or directory is missing, corrupt or unreadable
    ├── BackendError         generation failed
    │   ├── AuthError        the server refused the credentials (401/403)
    │   ├── RateLimited      too many requests (429), after retries
    │   ├── BadRequest       the server rejected the request (400/404/422), with its reason
    │   ├── ServerError      the server failed (5xx), after retries
    │   ├── Unreachable      no connection could be made
    │   ├── Timeout          no answer within the read timeout
    │   ├── StreamCut        the reply stream ended before it was complete
    │   ├── ContextOverflow  the conversation does not fit the model's context
    │   └── AddressRefused   a user's endpoint resolves to a loopback, private or metadata address
    ├── McpError             an MCP server cannot start, stopped, or refused a call
    │   └── McpTimeout       an MCP server did not answer in time
    └── LimitReached         a user is over a per-user limit (says which, and when it frees)
"""

from __future__ import annotations


class MixchatError(Exception):
    """Base of every error mixchat raises on purpose."""


class ConfigError(MixchatError, ValueError):
    """A setting has a value that is not allowed."""


class MissingDependency(MixchatError, ImportError):
    """An optional package is needed for what was asked."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        install = f"pip install 'mixchat[{extra}]'" if extra else f"pip install {package}"
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is not installed{what}: run `{install}`")
        self.package = package
        self.extra = extra


class ModelLoadError(MixchatError):
    """A model could not be loaded."""


class BackendError(MixchatError):
    """Generation failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False


class AuthError(BackendError):
    pass


class RateLimited(BackendError):
    retryable = True


class BadRequest(BackendError):
    pass


class ServerError(BackendError):
    retryable = True


class Unreachable(BackendError):
    retryable = True


class Timeout(BackendError):
    retryable = True


class StreamCut(BackendError):
    pass


class ContextOverflow(BackendError):
    pass


class McpError(MixchatError):
    """An MCP server cannot start, stopped, or refused a call."""


class McpTimeout(McpError):
    pass


class AddressRefused(BackendError):
    """A URL a user typed leads to an address the address guard does not allow."""


class LimitReached(MixchatError):
    """A user is over one of the operator's per-user limits.

    ``limit`` names it (``requests_in_flight``, ``tokens_per_day``); ``frees_at`` is when the
    next request may run (None: when one of the user's requests in flight ends).
    """

    def __init__(self, message: str, limit: str, frees_at: object = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.frees_at = frees_at


__all__ = [
    "AddressRefused",
    "AuthError",
    "BackendError",
    "BadRequest",
    "ConfigError",
    "ContextOverflow",
    "LimitReached",
    "McpError",
    "McpTimeout",
    "MissingDependency",
    "MixchatError",
    "ModelLoadError",
    "RateLimited",
    "ServerError",
    "StreamCut",
    "Timeout",
    "Unreachable",
]
