"""Prompt formats: conversations (OpenAI-style messages) to the text or ids a model was trained on."""

from mixchat.prompt.gemma import gemma_prompt
from mixchat.prompt.messages import split_system
from mixchat.prompt.mixtral import (
    mistral_v1_sentencepiece,
    mistral_v1_tokenizer_path,
    mixtral_prompt,
    mixtral_token_ids,
)
from mixchat.prompt.transcript import TRANSCRIPT_STOP, transcript_prompt

__all__ = [
    "TRANSCRIPT_STOP",
    "gemma_prompt",
    "mistral_v1_sentencepiece",
    "mistral_v1_tokenizer_path",
    "mixtral_prompt",
    "mixtral_token_ids",
    "split_system",
    "transcript_prompt",
]
