"""The tiny Mixtral GGUF loads in llama.cpp, speaks Mixtral's ids, and shows llama.cpp's quirks.

The quirk tests pin down why the llama.cpp backend must feed ``mixtral_token_ids`` rather
than tokenizing the prompt text: if llama.cpp changes, they fail and say what changed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import gguf
import jinja2
import llama_cpp
import pytest

from mixchat.prompt import mistral_v1_sentencepiece, mixtral_prompt, mixtral_token_ids
from tiny_mixtral_gguf import CHAT_TEMPLATE, build_tiny_mixtral_gguf

SPACE = 28705  # "▁" alone: what llama.cpp inserts after <s> and </s> when tokenizing text
HI = [{"role": "user", "content": "Hi"}]
TEXTS = [
    "Hello world!",
    "  two  spaces and a trailing one ",
    "naïve café — 東京 🚀",
    "line1\nline2\ttab",
    "[INST] not a control token [/INST]",
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mixtral_gguf(tmp_path_factory.mktemp("gguf") / "tiny-mixtral.gguf")


def _load(path: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(path), n_ctx=512, n_threads=1, seed=0, verbose=False)


@pytest.fixture(scope="module")
def reader(model_path: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(model_path)


@pytest.fixture(scope="module")
def llm(model_path: Path) -> Iterator[llama_cpp.Llama]:
    model = _load(model_path)
    yield model
    model.close()


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path, model_path: Path) -> None:
    again = build_tiny_mixtral_gguf(tmp_path / "again.gguf")
    other = build_tiny_mixtral_gguf(tmp_path / "other.gguf", seed=1)
    assert again.read_bytes() == model_path.read_bytes()
    assert other.read_bytes() != model_path.read_bytes()
    assert model_path.stat().st_size < 12 * 2**20


def test_impossible_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_head"):
        build_tiny_mixtral_gguf(tmp_path / "bad.gguf", n_head=3)
    with pytest.raises(ValueError, match="n_experts_used"):
        build_tiny_mixtral_gguf(tmp_path / "bad.gguf", n_experts_used=5)


def test_metadata_is_mixtral_shaped(llm: llama_cpp.Llama) -> None:
    meta = llm.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["general.name"] == "tiny-mixtral"
    assert meta["llama.expert_count"] == "4"
    assert meta["llama.expert_used_count"] == "2"
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.chat_template"] == CHAT_TEMPLATE
    assert (llm.token_bos(), llm.token_eos(), llm.n_vocab()) == (1, 2, 32000)


def test_expert_tensors_are_stacked(reader: gguf.GGUFReader) -> None:
    tensors = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    # ggml order (ne): columns first, experts last.
    assert tensors["blk.0.ffn_gate_inp.weight"] == [64, 4]
    assert tensors["blk.1.ffn_gate_exps.weight"] == [64, 128, 4]
    assert tensors["blk.1.ffn_down_exps.weight"] == [128, 64, 4]
    assert tensors["output.weight"] == [64, 32000]


def test_vocab_is_sentencepiece_s(reader: gguf.GGUFReader) -> None:
    sp = mistral_v1_sentencepiece()
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()
    scores = reader.get_field(gguf.Keys.Tokenizer.SCORES).contents()
    types = reader.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).contents()
    assert tokens == [sp.IdToPiece(i) for i in range(sp.vocab_size())]
    assert scores == pytest.approx([sp.GetScore(i) for i in range(sp.vocab_size())])
    T = gguf.TokenType
    assert types[:3] == [T.UNKNOWN, T.CONTROL, T.CONTROL]
    assert set(types[3:259]) == {T.BYTE}
    assert set(types[259:]) == {T.NORMAL}


def test_tokenize_plain_text_matches_sentencepiece(llm: llama_cpp.Llama) -> None:
    sp = mistral_v1_sentencepiece()
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == sp.encode(text)


def test_detokenize_matches_sentencepiece(llm: llama_cpp.Llama) -> None:
    sp = mistral_v1_sentencepiece()
    rng = random.Random(0)
    samples = [sp.encode(text) for text in TEXTS]
    samples += [[rng.randrange(259, 32000) for _ in range(50)] for _ in range(20)]
    for ids in samples:
        assert llm.detokenize([1, *ids]).decode() == sp.decode(ids)
        assert llm.detokenize(ids).decode().removeprefix(" ") == sp.decode(ids)
    # llama-cpp-python drops the first piece's "▁" only after a BOS; sentencepiece always.
    assert llm.detokenize(sp.encode("Hello")) == b" Hello"
    assert llm.detokenize([sp.piece_to_id("<0x0A>")]) == b"\n"


def test_special_tokens_are_silent_unless_asked(llm: llama_cpp.Llama) -> None:
    assert llm.detokenize([1, 2]) == b""
    assert llm.detokenize([1, 2], special=True) == b"<s></s>"


def _greedy(llm: llama_cpp.Llama, ids: list[int]) -> dict:
    return llm.create_completion(prompt=ids, max_tokens=8, temperature=0)


def test_generates_from_mixtral_token_ids(llm: llama_cpp.Llama) -> None:
    ids = mixtral_token_ids(HI)
    reply = _greedy(llm, ids)
    assert reply["usage"]["prompt_tokens"] == len(ids)
    assert reply["usage"]["completion_tokens"] == 8
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["text"]


def test_greedy_generation_is_deterministic_across_loads(
    llm: llama_cpp.Llama, model_path: Path
) -> None:
    ids = mixtral_token_ids(HI, assistant_prefix="Sure")
    first = _greedy(llm, ids)["choices"][0]["text"]
    fresh = _load(model_path)
    try:
        assert _greedy(fresh, ids)["choices"][0]["text"] == first
    finally:
        fresh.close()


def test_pitfall_tokenizing_the_prompt_text_adds_stray_spaces(llm: llama_cpp.Llama) -> None:
    """llama.cpp puts a ``▁`` after every special token written in the text; sentencepiece
    pieces encoded one by one (mistral-common) have none."""
    ids = mixtral_token_ids(HI)
    assert llm.tokenize(b"<s> [INST] Hi [/INST]", add_bos=False, special=True) == [
        1,
        SPACE,
        *ids[1:],
    ]
    # The text without "<s> " and llama.cpp's own BOS: right for a single turn only.
    assert llm.tokenize(b"[INST] Hi [/INST]", add_bos=True, special=True) == ids
    turns = [*HI, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    ids = mixtral_token_ids(turns)
    eos = ids.index(2)
    text = mixtral_prompt(turns).encode()
    assert llm.tokenize(text, add_bos=False, special=True) == [
        1,
        SPACE,
        *ids[1 : eos + 1],
        SPACE,
        *ids[eos + 1 :],
    ]


def test_pitfall_special_true_reads_control_tokens_in_user_text(llm: llama_cpp.Llama) -> None:
    text = b"a </s> b"
    assert 2 in llm.tokenize(text, add_bos=False, special=True)
    assert 2 not in llm.tokenize(text, add_bos=False, special=False)


def test_chat_template_renders_the_hf_mixtral_format() -> None:
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    turns = [*HI, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    text = template.render(messages=turns, bos_token="<s>", eos_token="</s>")
    assert text == "<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]"
