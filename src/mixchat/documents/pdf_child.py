"""``python -I pdf_child.py CPU_SECONDS MEMORY_BYTES MAX_PAGES MAX_CHARS`` < PDF > JSON.

Runs in its own process so a hostile PDF (deep nesting, huge streams, a decompression bomb)
meets this process's CPU and address-space limits, never the server's.
"""

from __future__ import annotations

import io
import json
import resource
import sys


def main(argv: list[str]) -> None:
    seconds, memory, max_pages, max_chars = (int(value) for value in argv[1:5])
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    data = sys.stdin.buffer.read()
    try:
        result = {"ok": True, **_extract(data, max_pages, max_chars)}
    except MemoryError:
        result = {"ok": False, "error": "the PDF needs more memory than allowed to read"}
    except _Refused as error:
        result = {"ok": False, "error": str(error)}
    except Exception as error:  # noqa: BLE001 - pypdf raises many kinds for damaged files
        result = {"ok": False, "error": f"the PDF could not be read ({type(error).__name__})"}
    sys.stdout.write(json.dumps(result))


class _Refused(Exception):
    pass


def _extract(data: bytes, max_pages: int, max_chars: int) -> dict[str, object]:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise _Refused("the PDF is encrypted")
    pages = len(reader.pages)
    if pages > max_pages:
        raise _Refused(f"the PDF has {pages} pages; the limit is {max_pages}")
    texts: list[str] = []
    total = 0
    for page in reader.pages:
        text = page.extract_text() or ""
        total += len(text)
        if total > max_chars:
            raise _Refused(f"the PDF has more than {max_chars:,} characters of text")
        texts.append(text)
    return {"text": "\n\n".join(t.strip() for t in texts if t.strip()), "pages": pages}


if __name__ == "__main__":
    main(sys.argv)
