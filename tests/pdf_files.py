"""Small PDFs written by hand for the document tests: a real one with text, and hostile ones."""

from __future__ import annotations

import zlib


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF file of these objects (1-based), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, compressed: bool = False) -> bytes:
    flate = b" /Filter /FlateDecode" if compressed else b""
    return b"<< /Length %d%s >>\nstream\n" % (len(data), flate) + data + b"\nendstream"


def text_pdf(pages: list[str]) -> bytes:
    """A PDF with one line of Helvetica text per page."""
    count = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, line in enumerate(pages):
        content = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % line.encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 "
            b"3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * index)
        )
        objects.append(_stream(content))
    return _pdf(objects)


def bomb_pdf(megabytes: int) -> bytes:
    """A small PDF whose page content inflates to ``megabytes`` MB (a decompression bomb)."""
    packer = zlib.compressobj(9)
    chunk = b"0" * (1024 * 1024)
    packed = b"".join(packer.compress(chunk) for _ in range(megabytes)) + packer.flush()
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _stream(packed, compressed=True),
        ]
    )


def many_pages_pdf(count: int) -> bytes:
    return text_pdf([f"page {n}" for n in range(count)])
