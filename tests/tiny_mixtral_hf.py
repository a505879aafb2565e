"""Build a tiny random-weight Mixtral that transformers loads from a directory, offline.

The architecture is Mixtral's (``MixtralForCausalLM``: sparse experts, top-2 routing) and the
tokenizer is Mixtral's real one, converted from the ``tokenizer.model.v1`` that mistral-common
ships, so prompt ids can be checked against mistral-common. Only the sizes are small, which
keeps loading and generation to a fraction of a second on a CPU. The benchmark uses it too,
with larger sizes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

#: A shortened form of Mixtral-8x7B-Instruct's chat template, saved with the tokenizer as the
#: real repository does: the backend must still feed mistral-common's ids, not this text.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)


def build_tiny_mixtral(
    directory: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    experts: int = 4,
    intermediate_size: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    context: int = 2048,
    seed: int = 0,
    dtype: str = "float32",
    chat_template: str | None = CHAT_TEMPLATE,
) -> Path:
    """Save a random ``MixtralForCausalLM`` (weights in ``dtype``) and Mixtral's tokenizer."""
    import torch
    from transformers import LlamaTokenizer, MixtralConfig, MixtralForCausalLM

    from mixchat.prompt import mistral_v1_tokenizer_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = MixtralConfig(
        vocab_size=32000,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        num_local_experts=experts,
        num_experts_per_tok=2,
        max_position_embeddings=context,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    model = MixtralForCausalLM(config).to(getattr(torch, dtype)).eval()
    model.save_pretrained(directory)

    with tempfile.TemporaryDirectory() as spm_dir:
        # transformers 5 converts a sentencepiece model found as tokenizer.model in a directory.
        shutil.copy(mistral_v1_tokenizer_path(), Path(spm_dir) / "tokenizer.model")
        tokenizer = LlamaTokenizer.from_pretrained(spm_dir, legacy=False)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)
    return directory
