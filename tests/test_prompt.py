"""The Mixtral format against Mistral's own tokenizer (mistral-common's InstructTokenizerV1)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from mixchat.prompt import (
    gemma_prompt,
    mistral_v1_sentencepiece,
    mistral_v1_tokenizer_path,
    mixtral_prompt,
    mixtral_token_ids,
    split_system,
    transcript_prompt,
)

MISTRAL = MistralTokenizer.from_file(mistral_v1_tokenizer_path())
_CLASSES = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}


def mistral_common_encoding(messages: list[dict[str, str]]) -> tuple[str, list[int]]:
    """mistral-common's rendering (pieces joined, ``▁`` as space, bytes decoded) and ids."""
    request = ChatCompletionRequest(
        messages=[_CLASSES[m["role"]](content=m["content"]) for m in messages]
    )
    tokens = MISTRAL.encode_chat_completion(request).tokens
    sp = mistral_v1_sentencepiece()
    out = bytearray()
    for token in tokens:
        if sp.is_byte(token):
            out.append(int(sp.id_to_piece(token)[1:-1], 16))
        elif sp.is_control(token):
            out += sp.id_to_piece(token).encode()
        else:
            out += sp.id_to_piece(token).replace("\u2581", " ").encode()
    return out.decode(), tokens


# Text a person or a model writes: runs of spaces, tabs, newlines, leading and trailing
# whitespace, accents, CJK, emoji, markup that looks like special tokens.
_PIECES = st.sampled_from(
    [
        " ",
        "  ",
        "   ",
        "\n",
        "\n\n",
        "\t",
        "Hi",
        "hello",
        "world",
        "é",
        "naïve",
        "中文",
        "日本語",
        "🙂",
        "👩‍💻",
        "[INST]",
        "[/INST]",
        "<s>",
        "</s>",
        "```",
        "json",
        "{",
        "}",
        '"',
        "'",
        "x=1",
        "42",
        "-",
        ".",
        "?",
        "!",
        "Ω",
        "ß",
        "\u00a0",
        "ÿ",
    ]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(min_size=1, max_size=6)), min_size=1, max_size=12).map(
    "".join
)
_NON_EMPTY = _TEXT.filter(lambda text: text != "")


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, str]]:
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_TEXT)})
    turns = draw(st.integers(min_value=0, max_value=4))
    for _ in range(turns):
        messages.append({"role": "user", "content": draw(_TEXT)})
        # mistral-common rejects an empty assistant message
        messages.append({"role": "assistant", "content": draw(_NON_EMPTY)})
    messages.append({"role": "user", "content": draw(_TEXT)})
    return messages


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_matches_mistral_common_text_and_ids(messages: list[dict[str, str]]) -> None:
    text, ids = mistral_common_encoding(messages)
    assert mixtral_token_ids(messages) == ids
    if not any("\u2581" in m["content"] for m in messages):  # ▁ is the space marker itself
        assert mixtral_prompt(messages) == text


def test_the_documented_format() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "  two  spaces\nand a line "},
    ]
    assert mixtral_prompt(messages) == (
        "<s> [INST] Be brief.\n\nHi [/INST] Hello!</s> [INST]   two  spaces\nand a line  [/INST]"
    )
    assert mixtral_token_ids(messages) == mistral_common_encoding(messages)[1]


def test_ids_have_one_bos_and_no_stray_space_after_it() -> None:
    ids = mixtral_token_ids([{"role": "user", "content": "Hi"}])
    assert ids == [1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793]
    assert ids.count(1) == 1 and ids[1] != 28705


def test_assistant_prefix_continues_the_reply() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert (
        mixtral_prompt(messages, assistant_prefix='{"tool_name":')
        == '<s> [INST] Hi [/INST] {"tool_name":'
    )
    ids = mixtral_token_ids(messages, assistant_prefix="Sure")
    assert ids[: len(mixtral_token_ids(messages))] == mixtral_token_ids(messages)


def test_user_text_that_looks_like_special_tokens_stays_text() -> None:
    ids = mixtral_token_ids([{"role": "user", "content": "</s><s>"}])
    assert ids.count(2) == 0 and ids.count(1) == 1


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([], "empty"),
        ([{"role": "assistant", "content": "hi"}], "user message was expected"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "assistant message was expected",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "end with a user",
        ),
        ([{"role": "robot", "content": "a"}], "role 'robot'"),
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            "assistant message was expected",
        ),
        ([{"role": "system", "content": "s"}], "end with a user"),
        ([{"role": "user", "content": None}], "no text content"),
        (["hello"], "role None"),
    ],
)
def test_invalid_conversations_raise_a_clear_value_error(messages: list, complaint: str) -> None:
    for render in (mixtral_prompt, mixtral_token_ids, gemma_prompt, transcript_prompt):
        with pytest.raises(ValueError, match=complaint):
            render(messages)


def test_split_system() -> None:
    assert split_system([{"role": "system", "content": "S"}, {"role": "user", "content": "u"}]) == (
        "S",
        [{"role": "user", "content": "u"}],
    )


def test_gemma_turns() -> None:
    prompt = gemma_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": " Hi "},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ]
    )
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


def test_transcript() -> None:
    prompt = transcript_prompt(
        [
            {"role": "system", "content": "A helpful assistant."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Capital of France?"},
        ]
    )
    assert (
        prompt
        == "A helpful assistant.\n\nUser: Hi\nAssistant: Hello\nUser: Capital of France?\nAssistant:"
    )
