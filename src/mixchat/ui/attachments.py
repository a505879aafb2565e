"""Documents attached in the web chat: read on the server, counted, then part of the user turn.

The browser refuses a file over the size limit before reading it and sends the others'
bytes in base64 over the transcript's message channel; here the size is checked again,
before decoding, and the file is read with :mod:`mixchat.documents` in a worker thread (a PDF
in its capped child process), so a hostile file never holds up the event loop. A message
with documents is stored as its user turn (:func:`~mixchat.documents.with_documents`, as
``mixchat ask -f`` does); :func:`split_documents` reads the documents back out of it for the
chips shown on the message.
"""

from __future__ import annotations

import ast
import base64
import binascii
import re
from dataclasses import dataclass

from mixchat.documents import Document, DocumentLimits, DocumentRefused, read_document
from mixchat.outcome import plural

LIMITS = DocumentLimits()
_DOCUMENT = re.compile(
    r"<document name=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")>\n(.*?)\n</document>(?:\n\n|$)", re.S
)


@dataclass(frozen=True)
class Attached:
    """A document read and waiting in the input box, with what it costs in tokens."""

    document: Document
    tokens: int

    def chip(self) -> dict[str, object]:
        label = plural(self.tokens, "token")
        if self.document.pages:
            label = f"{plural(self.document.pages, 'page')}, {label}"
        return {"name": self.document.name, "label": label}


def read_attachment(name: str, data: str, limits: DocumentLimits = LIMITS) -> Document:
    """The document a page sent (``data``: its bytes in base64); blocking, run in a thread.

    The size is checked on the encoded length first, so an oversized file is refused before
    a byte of it is decoded.
    """
    name = (name or "document").replace("\n", " ")[:200]
    size = len(data) * 3 // 4
    if size > limits.max_bytes + 3:
        mb = lambda n: f"{n / 1024 / 1024:.1f} MB"  # noqa: E731
        raise DocumentRefused(
            f"{name} is {mb(size)}; the limit for a document is {mb(limits.max_bytes)}"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentRefused(f"{name} did not arrive whole: attach it again") from None
    return read_document(name, raw, limits)


def split_documents(content: str) -> tuple[str, list[tuple[str, str]]]:
    """A stored user turn as its question and its documents' (name, text), in order."""
    documents: list[tuple[str, str]] = []
    at = 0
    while match := _DOCUMENT.match(content, at):
        try:
            name = str(ast.literal_eval(match.group(1)))
        except (ValueError, SyntaxError):
            break
        documents.append((name, match.group(2)))
        at = match.end()
    return content[at:], documents


__all__ = ["LIMITS", "Attached", "read_attachment", "split_documents"]
