"""A tiny random-weight Mixtral GGUF with Mixtral's real vocabulary, built in a second.

Tests of the llama.cpp backend need a model that loads and generates offline, speaks
Mixtral's token ids and has Mixtral's shape (a llama with experts), without a 26 GB
download. The vocabulary is written exactly as llama.cpp's ``convert_hf_to_gguf.py``
(``_set_vocab_sentencepiece``) writes Mixtral's; the tensors are laid out as its
``MixtralModel`` leaves them (experts stacked into ``ffn_*_exps``), filled with seeded noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gguf
import numpy as np

from mixchat.prompt import mistral_v1_sentencepiece

if TYPE_CHECKING:
    from sentencepiece import SentencePieceProcessor

ARCH = gguf.MODEL_ARCH.LLAMA
NAME = "tiny-mixtral"

#: Mixtral-8x7B-Instruct-v0.1's ``chat_template`` (tokenizer_config.json on the Hub).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class _Sizes:
    n_layers: int
    n_embd: int
    n_experts: int
    n_experts_used: int
    n_ff: int
    n_head: int
    n_head_kv: int
    ctx: int

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def build_tiny_mixtral_gguf(
    path: Path,
    *,
    n_layers: int = 2,
    n_embd: int = 64,
    n_experts: int = 4,
    n_experts_used: int = 2,
    n_ff: int = 128,
    n_head: int = 4,
    n_head_kv: int = 2,
    ctx: int = 2048,
    seed: int = 0,
) -> Path:
    """Write the model to ``path`` and return ``path``.

    Same arguments, same bytes: the weights come from ``numpy`` seeded with ``seed``.
    """
    if n_embd % n_head or n_head % n_head_kv or not 0 < n_experts_used <= n_experts:
        raise ValueError(
            "n_embd must divide by n_head, n_head by n_head_kv, "
            "and n_experts_used must be between 1 and n_experts"
        )
    sizes = _Sizes(n_layers, n_embd, n_experts, n_experts_used, n_ff, n_head, n_head_kv, ctx)
    path = Path(path)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[ARCH])
    _add_hparams(writer, sizes)
    n_vocab = _add_vocab(writer)
    _add_tensors(writer, sizes, n_vocab, np.random.default_rng(seed))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_hparams(writer: gguf.GGUFWriter, sizes: _Sizes) -> None:
    """The keys ``LlamaModel.set_gguf_parameters`` writes for Mixtral (rope base 1e6)."""
    writer.add_name(NAME)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(sizes.ctx)
    writer.add_embedding_length(sizes.n_embd)
    writer.add_block_count(sizes.n_layers)
    writer.add_feed_forward_length(sizes.n_ff)
    writer.add_head_count(sizes.n_head)
    writer.add_head_count_kv(sizes.n_head_kv)
    writer.add_rope_dimension_count(sizes.head_dim)
    writer.add_rope_freq_base(1e6)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_expert_count(sizes.n_experts)
    writer.add_expert_used_count(sizes.n_experts_used)


def _add_vocab(writer: gguf.GGUFWriter) -> int:
    """Mixtral's sentencepiece vocab as ``_set_vocab_sentencepiece`` writes it; its size."""
    sp = mistral_v1_sentencepiece()
    ids = range(sp.vocab_size())
    tokens = [sp.IdToPiece(i).encode("utf-8") for i in ids]
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores([sp.GetScore(i) for i in ids])
    writer.add_token_types([_token_type(sp, i) for i in ids])
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    return len(tokens)


def _token_type(sp: SentencePieceProcessor, token_id: int) -> gguf.TokenType:
    """The order of checks in ``_create_vocab_sentencepiece``."""
    if sp.IsUnknown(token_id):
        return gguf.TokenType.UNKNOWN
    if sp.IsControl(token_id):
        return gguf.TokenType.CONTROL
    if sp.IsUnused(token_id):
        return gguf.TokenType.UNUSED
    if sp.IsByte(token_id):
        return gguf.TokenType.BYTE
    return gguf.TokenType.NORMAL


def _add_tensors(
    writer: gguf.GGUFWriter, sizes: _Sizes, n_vocab: int, rng: np.random.Generator
) -> None:
    """Random f16 matrices, an f32 router, f32 norms of ones.

    numpy shapes are ggml's ``ne`` reversed: ``(n_expert, rows, columns)`` for the experts.
    """
    T = gguf.MODEL_TENSOR
    n_embd, n_ff, n_experts = sizes.n_embd, sizes.n_ff, sizes.n_experts
    n_q, n_kv = sizes.n_head * sizes.head_dim, sizes.n_head_kv * sizes.head_dim

    def add(tensor: gguf.MODEL_TENSOR, shape: tuple[int, ...], bid: int | None = None) -> None:
        name = gguf.TENSOR_NAMES[tensor].format(bid=bid) + ".weight"
        if len(shape) == 1:
            writer.add_tensor(name, np.ones(shape, dtype=np.float32))
            return
        weights = rng.normal(0.0, 0.02, shape).astype(np.float32)
        # convert_hf_to_gguf keeps the router in f32, as it does the norms.
        writer.add_tensor(name, weights if tensor == T.FFN_GATE_INP else weights.astype(np.float16))

    add(T.TOKEN_EMBD, (n_vocab, n_embd))
    for bid in range(sizes.n_layers):
        add(T.ATTN_NORM, (n_embd,), bid)
        add(T.ATTN_Q, (n_q, n_embd), bid)
        add(T.ATTN_K, (n_kv, n_embd), bid)
        add(T.ATTN_V, (n_kv, n_embd), bid)
        add(T.ATTN_OUT, (n_embd, n_q), bid)
        add(T.FFN_NORM, (n_embd,), bid)
        add(T.FFN_GATE_INP, (n_experts, n_embd), bid)
        add(T.FFN_GATE_EXP, (n_experts, n_ff, n_embd), bid)
        add(T.FFN_UP_EXP, (n_experts, n_ff, n_embd), bid)
        add(T.FFN_DOWN_EXP, (n_experts, n_embd, n_ff), bid)
    add(T.OUTPUT_NORM, (n_embd,))
    add(T.OUTPUT, (n_vocab, n_embd))
