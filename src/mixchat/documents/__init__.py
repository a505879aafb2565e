"""Documents in the chat: an attached file turned into text for the user's turn.

Text, Markdown, code and CSV are read as text; HTML as its visible text; PDF through pypdf
in a child process that caps its own CPU time and memory, so a PDF bomb costs the server a
bounded few seconds and never its memory. Every refusal is a :class:`DocumentRefused` with
one line that says what the limit is. Reading is blocking: the web app calls
:func:`read_document` through ``asyncio.to_thread``.

>>> document = read_file(Path("notes.md"))
>>> turn = with_documents("Summarise this", [document])
>>> check_fits(backend, messages, max_tokens=256)   # raises DocumentTooLong, with numbers
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mixchat.documents.reading import (
    CODE_SUFFIXES,
    TEXT_SUFFIXES,
    DocumentLimits,
    DocumentRefused,
    read_document,
    read_file,
)
from mixchat.errors import ContextOverflow
from mixchat.messages import Message

if TYPE_CHECKING:
    from mixchat.backends.base import Backend


@dataclass(frozen=True)
class Document:
    """An attached file's text, and what it was."""

    name: str
    kind: str  # "text", "markdown", "code", "csv", "html", "pdf"
    text: str
    pages: int | None = None

    def to_prompt(self) -> str:
        """How the document appears in the user's turn (its name, then its text)."""
        return f"<document name={self.name!r}>\n{self.text}\n</document>"


class DocumentTooLong(ContextOverflow):
    """The message with its documents does not fit the model's context."""


def with_documents(question: str, documents: Sequence[Document]) -> str:
    """The user's turn: each document's text, then the question."""
    return "\n\n".join([*(d.to_prompt() for d in documents), question])


def check_fits(backend: Backend, messages: list[Message], max_tokens: int) -> int:
    """The prompt's token count; raises :class:`DocumentTooLong` saying by how much it is
    over the context (with room for a reply of ``max_tokens``). Unknown context: no check."""
    tokens = backend.count_tokens(messages)
    context = backend.context_length
    if context is not None and tokens + max_tokens > context:
        over = tokens + max_tokens - context
        raise DocumentTooLong(
            f"the message takes {tokens} tokens and the reply up to {max_tokens}: {over} more "
            f"than the model's context of {context}; shorten or split the document, or raise "
            "n_ctx"
        )
    return tokens


__all__ = [
    "CODE_SUFFIXES",
    "TEXT_SUFFIXES",
    "Document",
    "DocumentLimits",
    "DocumentRefused",
    "DocumentTooLong",
    "check_fits",
    "read_document",
    "read_file",
    "with_documents",
]
