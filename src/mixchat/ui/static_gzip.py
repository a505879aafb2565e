"""Static files gzipped once per process, then sent from memory.

A new page fetches ~3.8 MB of JavaScript and CSS (Bokeh, Panel, the transcript's bundle),
and Panel's static handlers send it uncompressed: ~130 ms of the server's CPU per new page
in the sends alone, and seconds over a slow link. This tornado output transform gzips each
static file the first time it is sent and keeps the result under its ``Etag`` (the hash of
the file's content), so every later page gets ~1 MB for the cost of a copy.

A static file is a response with both an ``Etag`` and a ``Last-Modified`` header: what
tornado's ``StaticFileHandler`` (and Bokeh's and Panel's subclasses of it) send, and no
page, websocket or API answer does. Range requests (206), revalidations (304), HEAD and
clients that do not accept gzip pass untouched.
"""

from __future__ import annotations

import threading
import zlib

from tornado import httputil
from tornado.web import GZipContentEncoding, OutputTransform

#: zlib's default: once per file per process, so the level hardly matters for CPU.
LEVEL = 6
#: The memory the gzipped files may take (Bokeh, Panel and mixchat's own are ~1.3 MB).
MAX_CACHED_BYTES = 64 * 1024 * 1024

_cache: dict[str, bytes] = {}  # Etag -> the gzipped body
_cached_bytes = 0
_lock = threading.Lock()


def _compressible(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip()
    return kind.startswith("text/") or kind in GZipContentEncoding.CONTENT_TYPES


def _remember(etag: str, body: bytes) -> None:
    global _cached_bytes
    with _lock:
        if etag not in _cache and _cached_bytes + len(body) <= MAX_CACHED_BYTES:
            _cache[etag] = body
            _cached_bytes += len(body)


class StaticGzip(OutputTransform):
    """Gzip a static file's response: from the cache, or compressed as it streams and kept."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        accepted = request.headers.get("Accept-Encoding", "")
        self._on = request.method == "GET" and "gzip" in accepted
        self._etag = ""
        self._sent_whole = False  # the cached body went with the first chunk
        self._compressor: zlib._Compress | None = None
        self._parts: list[bytes] = []

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        etag = headers.get("Etag", "")
        self._on = (
            self._on
            and status_code == 200
            and bool(etag)
            and "Last-Modified" in headers
            and "Content-Encoding" not in headers
            and _compressible(headers.get("Content-Type", ""))
        )
        if not self._on:
            return status_code, headers, chunk
        if "Vary" in headers:
            headers["Vary"] += ", Accept-Encoding"
        else:
            headers["Vary"] = "Accept-Encoding"
        headers["Content-Encoding"] = "gzip"
        cached = _cache.get(etag)
        if cached is not None:  # the handler's further chunks are dropped
            self._sent_whole = True
            headers["Content-Length"] = str(len(cached))
            return status_code, headers, cached
        self._etag = etag
        self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        body = self.transform_chunk(chunk, finishing)
        if finishing:
            headers["Content-Length"] = str(len(body))
        elif "Content-Length" in headers:  # unknown until the end: sent chunked
            del headers["Content-Length"]
        return status_code, headers, body

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        if not self._on:
            return chunk
        if self._sent_whole:
            return b""
        assert self._compressor is not None
        body = self._compressor.compress(chunk)
        if finishing:
            body += self._compressor.flush()
        self._parts.append(body)
        if finishing:
            _remember(self._etag, b"".join(self._parts))
        return body
