"""Mixtral's instruction format, exact to the token against Mistral's v1 tokenizer.

``<s> [INST] {system}\\n\\n{user} [/INST] {answer}</s> [INST] {user} [/INST]``

mistral-common's ``InstructTokenizerV1`` (Mixtral-8x7B-Instruct) encodes each piece on its
own with sentencepiece: ``[INST] {content} [/INST]`` per user turn, ``{answer}`` plus EOS per
assistant turn, one BOS in front; the system prompt joins the first user turn. Tokenizing the
whole prompt text at once is *not* the same (a stray ``▁`` after ``<s>``, a second BOS, runs of
spaces split differently), so backends that take ids should feed :func:`mixtral_token_ids`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mixchat.prompt.messages import split_system

BOS, EOS = "<s>", "</s>"


def _pieces(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) pieces in the order mistral-common encodes them."""
    system, turns = split_system(messages)
    pieces = []
    for index, message in enumerate(turns):
        content = message["content"]
        if message["role"] == "user":
            if index == 0 and system:
                content = f"{system}\n\n{content}"
            pieces.append(("user", f"[INST] {content} [/INST]"))
        else:
            pieces.append(("assistant", content))
    return pieces


def mixtral_prompt(messages: Sequence[Mapping[str, Any]], assistant_prefix: str = "") -> str:
    """The prompt text, special tokens written as ``<s>`` and ``</s>``.

    Each piece is preceded by the space sentencepiece adds in front of it.
    """
    text = BOS
    for role, piece in _pieces(messages):
        text += f" {piece}" + (EOS if role == "assistant" else "")
    if assistant_prefix:
        text += f" {assistant_prefix}"
    return text


def mixtral_token_ids(
    messages: Sequence[Mapping[str, Any]],
    assistant_prefix: str = "",
    tokenizer: Any | None = None,
) -> list[int]:
    """The token ids mistral-common gives for ``messages`` (then ``assistant_prefix``).

    ``tokenizer`` is a ``sentencepiece.SentencePieceProcessor`` of Mixtral's vocabulary; by
    default the ``tokenizer.model.v1`` that mistral-common ships.
    """
    sp = tokenizer or mistral_v1_sentencepiece()
    ids = [sp.bos_id()]
    for role, piece in _pieces(messages):
        ids += sp.encode(piece)
        if role == "assistant":
            ids.append(sp.eos_id())
    if assistant_prefix:
        ids += sp.encode(assistant_prefix)
    return ids


def mistral_v1_tokenizer_path() -> str:
    """The path of ``tokenizer.model.v1`` inside the installed mistral-common."""
    import mistral_common

    return os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")


@functools.cache
def mistral_v1_sentencepiece() -> Any:
    """Mixtral's sentencepiece model (loaded once)."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=mistral_v1_tokenizer_path())
