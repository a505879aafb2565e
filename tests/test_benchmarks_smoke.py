"""The benchmarks run end to end in a tiny configuration and write their table and plots.

No speed is asserted here (the machines are shared and noisy): only that every benchmark runs,
measures something, and that the reading of the websocket frames and the verdicts are right.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from common import Row, percentile
from web import WireMeter, _Frame, _read_reply

SECTIONS = (
    "Cold start",
    "Streaming overhead",
    "Multi-turn prefix reuse",
    "Agent prefix reuse",
    "Concurrency",
    "Memory",
    "Bytes on the websocket",
    "Web tier (echo backend)",
    "Concurrency (echo backend)",
)


@pytest.mark.timeout(290)
def test_quick_run_writes_the_table_and_plots(tmp_path: Path, embedded_gguf: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "latest.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert {row.split(" | ")[0].lstrip("| ") for row in rows[1:]} == set(SECTIONS)
    assert "no GPU was lent" in report
    assert "targets met" in report
    assert "n/a" not in report, "a figure was not measured"
    assert "| of which frames carrying the text | 0 bytes |" not in report, (
        "the reply's frames were not found"
    )
    for name in (
        "streaming.png",
        "concurrency.png",
        "multiturn.png",
        "webtier.png",
        "concurrency-echo.png",
    ):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in report


def _frame(time: float, events: list[dict]) -> _Frame:
    payload = json.dumps({"events": events})
    return _Frame(time, payload, len(payload), len(payload) // 4)


def _custom(number: int, op: list[object]) -> dict:
    """A transcript push of one op as Bokeh sends it (``_send_msg``)."""
    entries = [["model", {"id": "p9"}], ["data", [number, op]]]
    return {
        "kind": "MessageSent",
        "msg_type": "bokeh_event",
        "msg_data": {
            "type": "event",
            "name": "esm_event",
            "values": {"type": "map", "entries": entries},
        },
    }


def test_reply_timings_come_from_the_frames_that_carry_its_text() -> None:
    header = _Frame(0, '{"msgid": "p1", "msgtype": "PATCH-DOC", "num_buffers": 0}', 60, 20)
    metadata = _Frame(0, "{}", 2, 4)
    frames = [
        _frame(10.1, [_custom(1, ["a", json.dumps({"id": 3, "role": "assistant"})])]),
        _frame(10.2, [_custom(2, ["s", 3, json.dumps({"progress": "Thinking…"})])]),
        header,
        metadata,
        _frame(10.5, [_custom(3, ["d", 3, "hello"])]),
        _frame(10.9, [_custom(4, ["d", 3, " world"])]),
        _frame(11.0, [_custom(5, ["s", 3, json.dumps({"status": "complete", "footer": "2 t"})])]),
        _frame(12.0, [_custom(6, ["b", False])]),  # after the end: not counted
    ]
    for frame in (header, metadata):
        frame.time = 10.5
    reply = _read_reply(frames, sent=10.0)
    assert reply.first_token == pytest.approx(0.5)
    assert reply.last_token == pytest.approx(0.9)
    assert reply.finished == pytest.approx(1.0)
    assert reply.frames == 7
    assert reply.bytes_received == sum(frame.size for frame in frames[:7])
    assert reply.wire_bytes == sum(frame.wire for frame in frames[:7])
    assert reply.body_bytes == sum(frame.size for frame in frames[2:6])


def _own(time: float, push: list[object]) -> _Frame:
    """A push as the transcript's own websocket sends it: one frame of JSON."""
    payload = json.dumps(push)
    return _Frame(time, payload, len(payload), len(payload) // 4)


def test_pushes_on_the_transcripts_own_socket_count_once_each() -> None:
    """Pushes come on the transcript's socket, one frame each, and a reconnect may replay
    one that Bokeh's socket brought too: the page applies it once, and so does the reading."""
    frames = [
        _frame(10.1, [_custom(1, ["a", json.dumps({"id": 3, "role": "assistant"})])]),
        _own(10.4, [2, ["d", 3, "hello"]]),
        _frame(10.6, [_custom(3, ["d", 3, " world"])]),
        _own(10.7, [3, ["d", 3, " world"]]),  # replayed after a reconnect: not again
        _own(10.8, [4, ["s", 3, json.dumps({"status": "complete"})], ["b", False]]),
    ]
    reply = _read_reply(frames, sent=10.0)
    assert reply.first_token == pytest.approx(0.4)
    assert reply.last_token == pytest.approx(0.6)
    assert reply.finished == pytest.approx(0.8)
    assert reply.body_bytes == frames[1].size + frames[2].size


def test_the_wire_meter_counts_the_deflate_stream_the_browser_inflates() -> None:
    """Its bytes are a real permessage-deflate stream: inflated in order they give the
    payloads back, and a repeated frame costs a few bytes (context takeover)."""
    meter, inflate = WireMeter(6), zlib.decompressobj(-15)
    payload = json.dumps({"events": [_custom(1, ["d", 3, "hello world"])]}).encode()
    sizes = []
    for _ in range(3):
        before = meter._deflate.copy()  # type: ignore[union-attr]
        sizes.append(meter.bytes_for(payload))
        body = before.compress(payload) + before.flush(zlib.Z_SYNC_FLUSH)
        assert inflate.decompress(body) == payload
        framed = len(body) - 4  # the flush's 4-byte tail is not sent
        assert sizes[-1] == framed + (2 if framed < 126 else 4)  # + the frame's header
    assert sizes[1] < 20 < len(payload) / 4 < sizes[0]
    assert (
        WireMeter(0).bytes_for(payload) == len(payload) + 4
    )  # off: the payload, framed (4-byte header)


def test_verdicts_say_by_how_much_a_target_is_missed() -> None:
    assert Row("s", "lag", 40, "ms", target=50).verdict == "met"
    assert Row("s", "lag", 75, "ms", target=50).verdict == "missed by 25 ms (50%)"
    assert Row("s", "speed", 0.9, "x", target=0.95, higher_is_better=True).verdict.startswith(
        "missed by 0.05 x"
    )
    assert Row("s", "speed", 0.97, "x", target=0.95, higher_is_better=True).met
    assert Row("s", "rss", 500, "MB").verdict == ""


def test_p99_of_few_samples_is_their_maximum() -> None:
    assert percentile([0.001] * 50 + [0.2], 99) == 0.2
    assert percentile(list(range(1, 201)), 99) == 198
