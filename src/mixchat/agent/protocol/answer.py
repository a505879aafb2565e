"""Streaming a final answer while the tool call that carries it is still being written."""

from __future__ import annotations

import re
from typing import ClassVar

from mixchat.tools.base import FINAL_ANSWER, normalize_name


class AnswerStream:
    """Decodes the ``"input"`` string of a Final Answer while the reply streams in."""

    _NAME = re.compile(r'"tool_name"\s*:\s*"([^"\\]*)"')
    _INPUT = re.compile(r'"input"\s*:\s*"')
    _ESCAPES: ClassVar[dict[str, str]] = {
        '"': '"',
        "\\": "\\",
        "/": "/",
        "b": "\b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
    }

    def __init__(self) -> None:
        self.position: int | None = None
        self.closed = False
        self.text = ""

    def feed(self, reply: str) -> str:
        """``reply`` is the whole reply so far; returns the answer text not yet returned."""
        if self.closed:
            return ""
        if self.position is None and not self._find_start(reply):
            return ""
        assert self.position is not None
        new: list[str] = []
        index = self.position
        while index < len(reply):
            char = reply[index]
            if char == '"':
                self.closed = True
                index += 1
                break
            if char == "\\":
                decoded, length = self._escape(reply, index)
                if length == 0:  # incomplete escape: wait for more text
                    break
                new.append(decoded)
                index += length
                continue
            new.append(char)
            index += 1
        self.position = index
        added = "".join(new)
        if not self.text:
            added = added.lstrip()  # answers start at their first word
        self.text += added
        return added

    def _find_start(self, reply: str) -> bool:
        name = self._NAME.search(reply)
        if not name or normalize_name(name.group(1)) != normalize_name(FINAL_ANSWER):
            return False
        start = self._INPUT.search(reply, name.end())
        if not start:
            return False
        self.position = start.end()
        return True

    def _escape(self, reply: str, index: int) -> tuple[str, int]:
        if index + 1 >= len(reply):
            return "", 0
        code = reply[index + 1]
        if code == "u":
            digits = reply[index + 2 : index + 6]
            if len(digits) < 4:
                return "", 0
            try:
                return chr(int(digits, 16)), 6
            except ValueError:
                return "", 2
        return self._ESCAPES.get(code, code), 2
