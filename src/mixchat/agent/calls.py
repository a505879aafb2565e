"""Tool calls whose ``input`` follows each tool's own schema.

The walkthrough's tools take one string: ``{"tool_name": "Calculator", "input": "..."}``. A tool
with ``parameters`` (an MCP tool) takes an object that follows them:
``{"tool_name": "add", "input": {"a": 2, "b": 3}}``. Where the backend constrains its output,
:func:`call_schema` is a ``oneOf`` with one branch per tool, the tool name first, so a grammar
(llama.cpp) makes each call valid for the tool it names; elsewhere :func:`checked_input`
validates a parsed call and tells the model what to fix.

With only string tools the schema is the walkthrough's (``tool_name`` an enum), unchanged.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import jsonschema

from mixchat.agent.protocol import ProtocolError, action_schema
from mixchat.tools.base import FINAL_ANSWER, Tool, ToolInput

_STRING = {"type": "string"}


def call_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """The JSON schema of one call to one of ``tools`` (or a Final Answer)."""
    if all(tool.parameters is None for tool in tools):
        return action_schema([tool.name for tool in tools])
    definitions: dict[str, Any] = {}
    branches = []
    for index, tool in enumerate(tools):
        schema = _hoist_definitions(tool.input_schema, f"t{index}_", definitions)
        branches.append(_branch(tool.name, _closed(schema)))
    branches.append(_branch(FINAL_ANSWER, _STRING))
    combined: dict[str, Any] = {"oneOf": branches}
    if definitions:
        combined["$defs"] = definitions
    return combined


def _branch(name: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"tool_name": {"const": name}, "input": input_schema},
        "required": ["tool_name", "input"],
        "additionalProperties": False,
    }


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema that admits no keys it does not name (a grammar then never invents
    one); validation still uses the tool's own schema."""
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        return {**schema, "additionalProperties": False}
    return schema


def _hoist_definitions(
    schema: dict[str, Any], prefix: str, definitions: dict[str, Any]
) -> dict[str, Any]:
    """Move a tool schema's ``$defs`` to the root (renamed ``prefix + name``), since references
    are resolved from the root of the combined schema."""
    schema = copy.deepcopy(schema)
    own = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                for root in ("#/$defs/", "#/definitions/"):
                    if ref.startswith(root):
                        node = {**node, "$ref": "#/$defs/" + prefix + ref[len(root) :]}
            return {key: rename(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rename(item) for item in node]
        return node

    for name, definition in own.items():
        definitions[prefix + name] = rename(definition)
    renamed: dict[str, Any] = rename(schema)
    return renamed


def checked_input(tool: Tool, value: ToolInput) -> ToolInput:
    """The call's input as ``tool`` takes it; :class:`ProtocolError` saying what is wrong."""
    if tool.parameters is None:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ProtocolError(
                f'the input of "{tool.name}" must be a JSON object following its schema.'
            ) from None
    if not isinstance(value, dict):
        raise ProtocolError(f'the input of "{tool.name}" must be a JSON object.')
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(tool.parameters)(tool.parameters).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        raise ProtocolError(
            f'the input of "{tool.name}" does not follow its schema'
            f"{f' at {where}' if where else ''}: {error.message}."
        )
    return value


def shown_input(value: ToolInput) -> str:
    """A call's input as one text, for events, cards and the terminal."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


__all__ = ["call_schema", "checked_input", "shown_input"]
