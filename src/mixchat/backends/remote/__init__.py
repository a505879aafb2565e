"""What the remote backends (``mistral``, ``openai``) share: :mod:`.backend` (the SDK client,
retries, streaming), :mod:`.failures` (error mapping and the retry policy) and
:mod:`.assembler` (stream chunks to events).
"""

from mixchat.backends.remote.assembler import ReplyAssembler
from mixchat.backends.remote.backend import RemoteBackend, sampling_fields
from mixchat.backends.remote.failures import (
    Failure,
    HttpStatus,
    RetryPolicy,
    display_url,
    one_line,
    retry_after,
    server_reason,
)

__all__ = [
    "Failure",
    "HttpStatus",
    "RemoteBackend",
    "ReplyAssembler",
    "RetryPolicy",
    "display_url",
    "one_line",
    "retry_after",
    "sampling_fields",
    "server_reason",
]
