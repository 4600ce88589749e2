"""One instance of each component model, shared by the composite backends and the tool registry."""

from __future__ import annotations

import sys
import threading

__all__ = ["shared_backend"]

_own: dict[tuple, object] = {}
_lock = threading.Lock()


def shared_backend(cls, device: str = "cpu"):
    """The registry's shared instance of ``cls`` when the tool registry is in use (so a summary
    and the pose tool load BlazePose once), else one kept here."""
    registry = sys.modules.get("efe_langchain.tools.registry")
    get_backend = getattr(registry, "get_backend", None)
    if get_backend is not None:
        return get_backend(cls, device)
    with _lock:
        key = (cls, device)
        if key not in _own:
            _own[key] = cls(device)
        return _own[key]
