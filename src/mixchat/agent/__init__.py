"""The agent: answers by calling tools through the walkthrough's JSON protocol, step by step.

>>> import mixchat
>>> agent = mixchat.Agent(mixchat.get_backend(mixchat.load_settings()))
>>> async for event in agent.run("What is the square root of 512 multiplied by 7?"):  # doctest: +SKIP
...     print(event)
"""

from __future__ import annotations

from mixchat.agent.events import (
    AgentEvent,
    AgentFinished,
    AnswerDelta,
    StepError,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from mixchat.agent.loop import Agent, ModelCall
from mixchat.agent.protocol import (
    Action,
    ProtocolError,
    action_schema,
    parse_action,
    system_message,
)
from mixchat.agent.steps import Step, StepLog

__all__ = [
    "Action",
    "Agent",
    "AgentEvent",
    "AgentFinished",
    "AnswerDelta",
    "ModelCall",
    "ProtocolError",
    "StepError",
    "Step",
    "StepLog",
    "StepStarted",
    "ToolCalled",
    "ToolResult",
    "action_schema",
    "parse_action",
    "system_message",
]
