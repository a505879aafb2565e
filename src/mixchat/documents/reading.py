"""Files to text, with limits on size, type, pages and time; hostile files are refused."""

from __future__ import annotations

import html.parser
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mixchat.errors import MixchatError

if TYPE_CHECKING:
    from mixchat.documents import Document

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                 ".csv": "csv", ".tsv": "csv", ".html": "html", ".htm": "html", ".pdf": "pdf"}  # fmt: skip
CODE_SUFFIXES = frozenset(
    ".py .js .ts .tsx .jsx .java .c .h .cpp .hpp .cc .rs .go .rb .php .cs .swift .kt .scala .sh "
    ".bash .sql .json .yaml .yml .toml .ini .cfg .xml .css .scss .r .jl .lua .pl .tex .rst .log "
    ".ipynb .dockerfile .makefile".split()
)
_PDF_CHILD = Path(__file__).with_name("pdf_child.py")


class DocumentRefused(MixchatError):
    """A file that is not read: too large, of a type not taken, binary, or hostile."""


@dataclass(frozen=True)
class DocumentLimits:
    """What one attached document may be."""

    max_bytes: int = 10 * 1024 * 1024
    max_pages: int = 300
    max_chars: int = 1_000_000
    pdf_seconds: float = 20.0
    pdf_memory_mb: int = 512


def read_file(path: Path, limits: DocumentLimits | None = None) -> Document:
    """Read an attached file from disk; its size is checked before a byte is read."""
    limits = limits or DocumentLimits()
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DocumentRefused(f"{path} is not a file")
        _check_size(path.name, size, limits)
        data = path.read_bytes()
    except OSError as error:
        raise DocumentRefused(f"cannot read {path}: {error.strerror or error}") from None
    return read_document(path.name, data, limits)


def read_document(name: str, data: bytes, limits: DocumentLimits | None = None) -> Document:
    """The text of an attached file's bytes (blocking: PDFs are read in a child process)."""
    from mixchat.documents import Document

    limits = limits or DocumentLimits()
    _check_size(name, len(data), limits)
    kind = _kind(name, data)
    if kind == "pdf":
        text, pages = _pdf_text(name, data, limits)
        if not text.strip():
            raise DocumentRefused(
                f"{name} has no text to read (scanned pages, or a damaged or hostile file)"
            )
        return Document(name, "pdf", _capped(name, text, limits), pages)
    text = _decoded(name, data)
    if kind == "html":
        text = html_text(text)
    return Document(name, kind, _capped(name, text, limits))


def _check_size(name: str, size: int, limits: DocumentLimits) -> None:
    if size > limits.max_bytes:
        raise DocumentRefused(
            f"{name} is {_megabytes(size)}; the limit for a document is "
            f"{_megabytes(limits.max_bytes)}"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _kind(name: str, data: bytes) -> str:
    suffix = Path(name).suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if suffix == ".pdf":
        raise DocumentRefused(f"{name} is not a PDF (it does not start with %PDF-)")
    if suffix in TEXT_SUFFIXES:
        return TEXT_SUFFIXES[suffix]
    if suffix in CODE_SUFFIXES or Path(name).name.lower() in ("makefile", "dockerfile"):
        return "code"
    if not suffix:
        return "text"  # README, LICENSE: taken if the bytes are text
    raise DocumentRefused(
        f"{name}: {suffix} files are not taken; attach text, Markdown, code, CSV, HTML or PDF"
    )


def _decoded(name: str, data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); binary data under a text name is refused."""
    sample = data[:65536]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    if b"\x00" in sample or controls > len(sample) // 100:
        raise DocumentRefused(f"{name} is binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise DocumentRefused(f"{name} is not UTF-8 text") from None


def _capped(name: str, text: str, limits: DocumentLimits) -> str:
    if len(text) > limits.max_chars:
        raise DocumentRefused(
            f"{name} has {len(text):,} characters of text; the limit is {limits.max_chars:,}"
        )
    return text


def _pdf_text(name: str, data: bytes, limits: DocumentLimits) -> tuple[str, int]:
    """pypdf in a child process with capped CPU time, memory, pages and output."""
    command = [
        sys.executable,
        "-I",
        str(_PDF_CHILD),
        str(int(limits.pdf_seconds)),
        str(limits.pdf_memory_mb * 1024 * 1024),
        str(limits.max_pages),
        str(limits.max_chars),
    ]
    try:
        finished = subprocess.run(
            command, input=data, capture_output=True, timeout=limits.pdf_seconds + 5, check=False
        )
    except subprocess.TimeoutExpired:
        raise DocumentRefused(
            f"{name}: reading the PDF took longer than {limits.pdf_seconds:g} s and was stopped"
        ) from None
    try:
        result = json.loads(finished.stdout)
    except ValueError:
        raise DocumentRefused(
            f"{name}: the PDF could not be read within {limits.pdf_seconds:g} s and "
            f"{limits.pdf_memory_mb} MB (a damaged or hostile file?)"
        ) from None
    if not result["ok"]:
        raise DocumentRefused(f"{name}: {result['error']}")
    return str(result["text"]), int(result["pages"])


class _VisibleText(html.parser.HTMLParser):
    """HTML to the text a reader sees: no tags, scripts or styles; blocks on their own lines."""

    _HIDDEN = frozenset({"script", "style", "head", "template", "noscript"})
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                         "pre", "blockquote", "section", "article", "table", "ul", "ol"})  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_text(source: str) -> str:
    """The visible text of an HTML page, blank lines collapsed."""
    parser = _VisibleText()
    parser.feed(source)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)
