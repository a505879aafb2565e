"""A conversation message: the OpenAI-style dict every backend, prompt format and face uses.

A ``TypedDict``, so ``{"role": "user", "content": "hi"}`` is a :class:`Message` as it is, and
the SDKs of the remote backends take it unchanged.
"""

from __future__ import annotations

from typing import Literal, TypedDict, get_args

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = get_args(Role)


class Message(TypedDict):
    role: Role
    content: str


__all__ = ["ROLES", "Message", "Role"]
