"""One process-wide cache of loaded reference models: one load per (model, folder, device, dtype).

Several backends use the same weights: every ControlNet runs on one Stable Diffusion 1.5 base,
detect / segment / remove / replace all run on one GroundingDINO and one SAM. Each backend asks
this cache for what it needs, so a model is loaded once however many tools (and backend
instances) use it, and two tools placed on different devices get their own copies.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, TypeVar

__all__ = ["cache_key", "clear_cache", "load_counts", "loaded", "shared_model", "weights_digest"]

T = TypeVar("T")
Key = tuple[str, str, str, str]

_models: dict[Key, Any] = {}
_key_locks: dict[Key, threading.Lock] = {}
_guard = threading.Lock()
# How many times each key was really loaded (not served from the cache): what tests check.
load_counts: Counter = Counter()


def cache_key(kind: str, location: str, device: str, dtype: str) -> Key:
    return (str(kind), str(location), str(device), str(dtype).replace("torch.", ""))


def shared_model(kind: str, location: str, device: str, dtype: str, loader: Callable[[], T]) -> T:
    """The cached model for the key, calling ``loader()`` only the first time (thread-safe).

    A per-key lock lets two different models load at once while two tools asking for the same
    one wait for a single load.
    """
    key = cache_key(kind, location, device, dtype)
    if key in _models:
        return _models[key]
    with _guard:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _models:
            _models[key] = loader()
            load_counts[key] += 1
    return _models[key]


def loaded() -> list[Key]:
    """Keys of the models loaded so far, in load order."""
    return list(_models)


def clear_cache() -> None:
    """Forget every cached model (their memory is freed once no backend holds them)."""
    with _guard:
        _models.clear()
        _key_locks.clear()
        load_counts.clear()


_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(8 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def weights_digest(folder: str | Path) -> str | None:
    """sha256 over the weight files one model folder loads (None when it has none).

    Two checkpoints that ship byte-identical weights for a part (SD 1.x fine-tunes keep the
    frozen CLIP text encoder and the VAE) get the same digest, so that part is loaded once.
    Hashing reads the files once per process (about a second for SD's VAE and text encoder).
    """
    from efe_langchain.backends.reference.memory import _weights_in

    files = _weights_in(Path(folder))
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + _file_digest(path).encode())
    return h.hexdigest()


def shared_processor_and_model(kind: str, processor_class: str, model_class: str, location: str, device: str, dtype: str):
    """``(processor, model)`` of a transformers checkpoint folder, through the cache above.

    BLIP, GroundingDINO, SAM and DPT all load this way: a processor class and a model class of
    transformers, named so that transformers is imported only when a model is really loaded.
    """

    def load():
        import transformers

        from efe_langchain.backends.reference.devices import torch_dtype

        processor = getattr(transformers, processor_class).from_pretrained(location)
        model = getattr(transformers, model_class).from_pretrained(location, dtype=torch_dtype(dtype))
        return processor, model.to(device).eval()

    return shared_model(kind, location, device, dtype, load)
