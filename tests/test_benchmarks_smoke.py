"""The benchmarks run end to end in a tiny configuration and write their table and plots.

No speed is asserted here (the machines are shared and noisy): only that every benchmark runs,
measures something, and that the reading of the websocket frames and the verdicts are right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from common import Row, percentile
from web import _Frame, _read_reply

SECTIONS = (
    "Cold start",
    "Streaming overhead",
    "Multi-turn prefix reuse",
    "Agent prefix reuse",
    "Concurrency",
    "Memory",
    "Bytes on the websocket",
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
    for name in ("streaming.png", "concurrency.png", "multiturn.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in report


def _frame(time: float, events: list[dict]) -> _Frame:
    payload = json.dumps({"events": events})
    return _Frame(time, payload, len(payload))


def test_reply_timings_come_from_the_frames_that_carry_its_body() -> None:
    body = {
        "type": "object",
        "name": "panel.models.markup.HTML",
        "id": "p9",
        "attributes": {"css_classes": ["markdown", "message"], "visible": False},
    }
    status = {"kind": "ModelChanged", "model": {"id": "p8"}, "attr": "text", "new": "Thinking…"}
    stream = {
        "kind": "MessageSent",
        "msg_data": {
            "type": "event",
            "name": "html_stream",
            "values": {
                "type": "map",
                "entries": [["model", {"id": "p9"}], ["patch", " world"], ["start", 5]],
            },
        },
    }
    frames = [
        _frame(
            10.1,
            [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "children", "new": [body]}],
        ),
        _frame(10.2, [status]),
        _frame(
            10.5,
            [{"kind": "ModelChanged", "model": {"id": "p9"}, "attr": "text", "new": "<p>hello"}],
        ),
        _frame(10.9, [stream]),
        _frame(
            11.0,
            [
                {
                    "kind": "ModelChanged",
                    "model": {"id": "p7"},
                    "attr": "css_classes",
                    "new": ["mixchat-stats", "mixchat-complete"],
                }
            ],
        ),
        _frame(12.0, [status]),  # after the end: not counted
    ]
    reply = _read_reply(frames, sent=10.0)
    assert reply.first_token == pytest.approx(0.5)
    assert reply.last_token == pytest.approx(0.9)
    assert reply.finished == pytest.approx(1.0)
    assert reply.frames == 5
    assert reply.bytes_received == sum(frame.size for frame in frames[:5])
    assert reply.body_bytes == frames[2].size + frames[3].size


def test_a_reply_body_created_with_its_first_text_counts_as_its_first_token() -> None:
    body = {
        "type": "object",
        "name": "panel.models.markup.HTML",
        "id": "p5",
        "attributes": {"css_classes": ["markdown", "message", "mixchat-reply"], "text": "<p>Hi"},
    }
    user = {
        "type": "object",
        "name": "panel.models.markup.HTML",
        "id": "p4",
        "attributes": {"css_classes": ["markdown", "message"], "text": "<p>question"},
    }
    frames = [
        _frame(
            5.1,
            [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "children", "new": [user]}],
        ),
        _frame(
            5.3,
            [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "children", "new": [body]}],
        ),
        _frame(
            5.4,
            [{"kind": "ModelChanged", "model": {"id": "p5"}, "attr": "text", "new": "<p>Hi there"}],
        ),
        _frame(
            5.6,
            [
                {
                    "kind": "ModelChanged",
                    "model": {"id": "p3"},
                    "attr": "css_classes",
                    "new": ["mixchat-stats", "mixchat-error"],
                }
            ],
        ),
    ]
    reply = _read_reply(frames, sent=5.0)
    assert reply.first_token == pytest.approx(0.3)
    assert reply.last_token == pytest.approx(0.4)
    assert reply.body_bytes == frames[1].size + frames[2].size


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
