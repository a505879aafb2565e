"""The walkthrough's JSON tool protocol.

Each model reply is one ``{"tool_name": ..., "input": "..."}`` object. Where the backend can
constrain its output, :func:`action_schema` makes every reply valid by construction; elsewhere
:func:`parse_action` digs the object out of what models actually write (code fences, prose
around it, single quotes, raw newlines in strings, a reply cut short, or the continuation of
the walkthrough's primed ``"tool_name": ``).

:mod:`.prompts` says what the model is told, :mod:`.parsing` reads its replies, and
:mod:`.answer` streams a final answer as it is written.
"""

from mixchat.agent.protocol.answer import AnswerStream
from mixchat.agent.protocol.parsing import (
    Action,
    ProtocolError,
    extract_object,
    object_span,
    parse_action,
    recorded_reply,
)
from mixchat.agent.protocol.prompts import (
    FINAL_PRIMER,
    MAX_OBSERVATION_CHARS,
    PRIMER,
    STEP_LIMIT_NOTE,
    action_schema,
    correction,
    describe_tool,
    function_name,
    native_system_message,
    native_tool_specs,
    observation,
    system_message,
)

__all__ = [
    "FINAL_PRIMER",
    "MAX_OBSERVATION_CHARS",
    "PRIMER",
    "STEP_LIMIT_NOTE",
    "Action",
    "AnswerStream",
    "ProtocolError",
    "action_schema",
    "correction",
    "describe_tool",
    "extract_object",
    "function_name",
    "native_system_message",
    "native_tool_specs",
    "object_span",
    "observation",
    "parse_action",
    "recorded_reply",
    "system_message",
]
