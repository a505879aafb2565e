"""How a transformers model's conversations become input ids.

Mixtral-family models with Mistral's v1 vocabulary get mistral-common's exact prompt ids
(:func:`mixtral_token_ids`): their Hugging Face tokenizer splits runs of spaces differently
from sentencepiece (``"  Hi"``: ``▁▁ Hi`` instead of ``▁ ▁Hi``). Other models go through
their chat template.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from mixchat.errors import ConfigError
from mixchat.messages import Message
from mixchat.prompt import mistral_v1_sentencepiece, mixtral_prompt, mixtral_token_ids, split_system

PromptIds = Callable[[Sequence[Message], str], list[int]]


def choose_prompt_ids(tokenizer: Any, config: Any, model_id: str) -> PromptIds:
    """How this model's conversations become input ids."""
    if has_mistral_v1_vocab(tokenizer):
        return lambda messages, prefix: mixtral_token_ids(messages, prefix)
    if tokenizer.chat_template:
        return functools.partial(_template_ids, tokenizer)
    if getattr(config, "model_type", "") in ("mixtral", "mistral"):
        return functools.partial(_text_ids, tokenizer)
    raise ConfigError(
        f"{model_id} has no chat template and is not a Mixtral or Mistral model, so mixchat "
        "cannot format a conversation for it: choose an instruction-tuned model"
    )


def has_mistral_v1_vocab(tokenizer: Any) -> bool:
    """True when the tokenizer's vocabulary is Mistral's v1 sentencepiece one, id for id."""
    sp = mistral_v1_sentencepiece()
    vocab = tokenizer.get_vocab()
    size = sp.get_piece_size()
    if len(vocab) != size:
        return False
    return all(vocab.get(sp.id_to_piece(i)) == i for i in range(size))


def _template_ids(tokenizer: Any, messages: Sequence[Message], prefix: str) -> list[int]:
    import jinja2

    split_system(messages)  # the same clear errors as the other formats
    try:
        text = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
    except jinja2.TemplateError as exc:  # e.g. "roles must alternate", "no system role"
        raise ValueError(f"the model's chat template rejected the conversation: {exc}") from exc
    return tokenizer(text + prefix, add_special_tokens=False)["input_ids"]


def _text_ids(tokenizer: Any, messages: Sequence[Message], prefix: str) -> list[int]:
    return tokenizer(mixtral_prompt(messages, prefix), add_special_tokens=False)["input_ids"]
