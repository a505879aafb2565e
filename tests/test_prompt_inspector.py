"""The prompt inspector: what the model received, stored with the reply, printed by the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from mixchat.messages import Message
from mixchat.prompt.inspector import PromptRecord, fit_context, mistral_common_ids
from test_prompt import mistral_common_encoding


def run(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MIXCHAT_DATA_DIR": str(data), **env},
    )


def test_fit_context_says_which_messages_were_dropped() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "old question " * 20},
        {"role": "assistant", "content": "old answer " * 20},
        {"role": "user", "content": "new"},
    ]
    count = lambda ms: sum(len(m["content"].split()) for m in ms)  # noqa: E731
    kept, dropped = fit_context(messages, count, context_length=30, max_tokens=10)
    assert kept == [messages[0], messages[3]] and dropped == messages[1:3]
    assert fit_context(messages, count, None, 10) == (messages, [])


def test_a_prompt_record_as_a_dict_is_a_copy_with_every_field() -> None:
    messages: list[Message] = [{"role": "user", "content": "hi"}]
    record = PromptRecord("echo", "m", messages, {"temperature": 0.5}, token_ids=[1, 2])
    data = record.to_dict()
    assert data == dataclasses.asdict(record)
    data["messages"][0]["content"] = "changed"
    data["token_ids"].append(3)
    assert record.messages[0]["content"] == "hi" and record.token_ids == [1, 2]
    assert PromptRecord.from_dict(record.to_dict()) == record


def test_mistral_common_ids_refuses_what_it_does_not_take() -> None:
    assert mistral_common_ids([{"role": "assistant", "content": "first"}]) is None
    assert (
        mistral_common_ids([{"role": "user", "content": "hi"}])
        == mistral_common_encoding([{"role": "user", "content": "hi"}])[1]
    )


def test_the_prompt_of_a_mixtral_reply_is_stored_and_its_ids_equal_mistral_commons(
    tiny_mixtral_gguf: Path, tmp_path: Path
) -> None:
    question = "Tell me  about\n\n<s> experts [INST] ✓"
    system = "Answer briefly."
    asked = run(
        tmp_path, "ask", "--model", str(tiny_mixtral_gguf), "--n-ctx", "512", "-n", "3",
        "--temperature", "0", "--system", system, question,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    expected_text, expected_ids = mistral_common_encoding(
        [{"role": "system", "content": system}, {"role": "user", "content": question}]
    )
    ids = run(tmp_path, "prompt", "--ids")
    assert ids.returncode == 0, ids.stderr
    assert [int(i) for i in ids.stdout.split()] == expected_ids
    shown = run(tmp_path, "prompt")
    assert shown.returncode == 0, shown.stderr
    assert f"{len(expected_ids)} prompt tokens; the ids equal mistral-common's" in shown.stdout
    assert "mixtral format" in shown.stdout and "temperature=0.0" in shown.stdout
    assert question in shown.stdout and "[INST]" in shown.stdout
    listed = run(tmp_path, "history", "list").stdout.split()[0]
    exported = json.loads(run(tmp_path, "history", "export", listed, "--format", "json").stdout)
    record = PromptRecord.from_dict(exported["messages"][-1]["prompt"])
    assert record.token_ids == expected_ids and record.equals_mistral_common is True
    assert record.sampling["max_tokens"] == 3 and record.dropped == []
    assert expected_text.startswith("<s>")


def test_an_agent_answer_from_the_terminal_is_saved_with_its_last_calls_prompt(
    tmp_path: Path,
) -> None:
    # the echo model repeats the call, so the agent uses the calculator up to its step limit
    call = '{"tool_name": "Calculator", "input": "6*7"}'
    asked = run(tmp_path, "ask", "--agent", "--backend", "echo", call, MIXCHAT_AGENT_MAX_STEPS="2")
    assert asked.returncode == 0, asked.stderr
    listed = run(tmp_path, "history", "list").stdout.split()[0]
    exported = json.loads(run(tmp_path, "history", "export", listed, "--format", "json").stdout)
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    record = PromptRecord.from_dict(exported["messages"][-1]["prompt"])
    assert record.agent_calls == 3  # two steps, then the call that may only answer
    assert "42" in json.dumps(record.messages)  # the calculator's output went back to it
    shown = run(tmp_path, "prompt")
    assert "the last of the agent's 3 model calls" in shown.stdout, shown.stderr
