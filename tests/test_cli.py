"""The command line as a user runs it: real processes, one-line errors, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def mixchat(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_ask_echo_prints_the_words() -> None:
    result = mixchat("ask", "--backend", "echo", "hello world")
    assert (result.returncode, result.stdout) == (0, "hello world\n")


def test_ask_reads_stdin_and_prints_stats() -> None:
    result = mixchat("ask", "--backend", "echo", "--stats", stdin="from a pipe")
    assert result.stdout == "from a pipe\n"
    assert "3 tokens" in result.stderr and "stop" in result.stderr


def test_ask_the_embedded_model(embedded_gguf: Path) -> None:
    result = mixchat("ask", "--temperature", "0", "-n", "24", "--stats", "The capital of France is")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) > 0
    assert "tokens" in result.stderr and "Traceback" not in result.stderr


def test_llama_cpp_log_lines_stay_off_stderr_unless_verbose(embedded_gguf: Path) -> None:
    quiet = mixchat("ask", "-n", "4", "--stats", "hello")
    assert quiet.returncode == 0, quiet.stderr
    *lines, stats = quiet.stderr.splitlines()
    assert lines and all(line.startswith("mixchat: ") for line in lines), lines
    assert "model loaded in" in stats and "first token" in stats  # the loading apart
    verbose = mixchat("ask", "--verbose", "-n", "4", "hello")
    assert verbose.returncode == 0, verbose.stderr
    assert any(line.startswith("llama") for line in verbose.stderr.splitlines()), verbose.stderr


def test_a_server_url_that_is_not_a_url_is_refused_as_such() -> None:
    result = mixchat("ask", "--backend", "openai", "--base-url", "localhost:8000/v1", "hi")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "mixchat: error: invalid setting base_url='localhost:8000/v1': 'localhost:8000/v1' is "
        "not a URL: write it with http:// or https://, e.g. http://localhost:8000/v1"
    )
    assert "retr" not in result.stderr  # refused at once, not after retries


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--temperature", "-1"],
            "invalid setting temperature=-1.0: Input should be greater than or equal to 0",
        ),
        (["--top-p", "2"], "invalid setting top_p=2.0: Input should be less than or equal to 1"),
        (["--backend", "nope"], "unknown backend 'nope': choose one of"),
        (["--model", "/no/such/model.gguf"], "GGUF file not found: /no/such/model.gguf"),
        (["--model", __file__], "is not a GGUF file"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(args: list[str], message: str) -> None:
    result = mixchat("ask", *args, "hi")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("mixchat: error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_gguf_is_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(20000))
    result = mixchat("ask", "--model", str(corrupt), "hi")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"mixchat: error: llama.cpp cannot load {corrupt}")
    )


def test_chat_is_multi_turn() -> None:
    result = mixchat("chat", "--backend", "echo", stdin="first message\n/reset\nsecond\n/exit\n")
    assert result.returncode == 0
    assert "first message" in result.stdout and "second" in result.stdout
    assert "(new conversation)" in result.stderr


def test_models_lists_every_backend() -> None:
    result = mixchat("models")
    assert result.returncode == 0
    for name in ("echo", "llamacpp", "transformers", "mistral", "openai"):
        assert name in result.stdout


def test_help_explains_each_command() -> None:
    result = mixchat("--help")
    for command in ("serve", "chat", "ask", "models"):
        assert command in result.stdout
    ask = mixchat("ask", "--help").stdout
    assert "--backend" in ask and "--temperature" in ask and "--agent" in ask
