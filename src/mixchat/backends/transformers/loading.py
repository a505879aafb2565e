"""Loading a transformers model: the tokenizer and weights, from a directory or the Hub, with
optional bitsandbytes quantization, and a note when quantization could not apply.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mixchat.config import Settings
from mixchat.errors import ConfigError, MissingDependency, ModelLoadError

DEFAULT_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def require_libraries() -> None:
    """Fail at once, with the extra to install, when torch or transformers is missing."""
    for package in ("transformers", "torch"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(
                package, extra="transformers", purpose="the transformers backend"
            )


def _has_bitsandbytes() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def load_model(settings: Settings, model_id: str) -> tuple[Any, Any, list[str]]:
    """Load the tokenizer and model (blocking); return them and notes for the user."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = model_source(model_id)
    quantization = quantization_config(settings.quantization)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=settings.trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            source,
            device_map=None if settings.device_map.lower() in ("", "none") else settings.device_map,
            dtype=settings.dtype if settings.dtype == "auto" else getattr(torch, settings.dtype),
            quantization_config=quantization,
            trust_remote_code=settings.trust_remote_code,
        )
    except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(
            f"cannot load {model_id!r} with transformers: {first_line(exc)}"
        ) from exc
    model.eval()
    notes = [] if quantization is None else quantization_notes(model, settings.quantization)
    return model, tokenizer, notes


def model_source(model_id: str) -> str:
    """The directory or Hub id to load. A path must be a saved model: otherwise transformers
    would ask the Hub for it and fail with a less helpful message."""
    path = Path(model_id).expanduser()
    looks_local = (
        model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id
    )
    if looks_local and not path.is_dir():
        raise ModelLoadError(
            f"model directory {model_id} does not exist: give a directory saved with "
            "save_pretrained, or a Hugging Face model id such as "
            f"{DEFAULT_MODEL}"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{model_id} has no config.json, so it is not a model saved with save_pretrained "
            "(for a GGUF file, use the llamacpp backend)"
        )
    return str(path) if path.is_dir() else model_id


def quantization_config(kind: str) -> Any:
    """A ``BitsAndBytesConfig`` for 4bit/8bit, or None; a clear error where it cannot apply."""
    if kind == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise ConfigError(
            f"quantization={kind} needs a CUDA GPU (bitsandbytes) and none was found: set "
            "quantization=none, or use the llamacpp backend with a quantized GGUF on this machine"
        )
    if not _has_bitsandbytes():
        raise MissingDependency("bitsandbytes", extra="quantization", purpose=f"{kind} loading")
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def quantization_notes(model: Any, kind: str) -> list[str]:
    """Say so when bitsandbytes left most weights unquantized (fused expert tensors).

    bitsandbytes quantizes ``nn.Linear`` layers only; transformers 5 stores a Mixtral layer's
    experts as fused 3-D parameters (``mlp.experts.gate_up_proj``), which it leaves at full size.
    """
    skipped = {
        id(p)
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        if m is not None
        for p in m.parameters()
    }
    total = full = 0
    example = ""
    for name, param in model.named_parameters():
        if id(param) in skipped or param.dim() < 2:
            continue
        total += param.numel()
        if param.is_floating_point():
            full += param.numel()
            example = example or (name if param.dim() > 2 else "")
    if not total or full / total < 0.1:
        return []
    where = f" (fused expert weights such as {example})" if example else ""
    size = model.get_memory_footprint() / 2**30
    return [
        (
            f"{kind} quantization applied to {1 - full / total:.0%} of the weights only: "
            f"bitsandbytes cannot quantize the rest{where}, which stay in {model.dtype} "
            f"(about {size:.1f} GiB in all)"
        )
    ]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
