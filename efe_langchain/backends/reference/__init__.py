"""Reference backends: the GPT4Tools checkpoints through transformers and diffusers.

Each class is a ``Backend`` of kind ``"reference"``; heavy imports happen on ``load()``. Weights
come from a folder, ``$EFE_MODEL_DIR/<hub id>`` or the Hugging Face cache (see ``config``);
models are shared process-wide (see ``shared``). Classes are exported lazily, so importing this
package (as ``efe tools`` does to list backends) loads no model library.
"""

from __future__ import annotations

import importlib
from typing import Any

from efe_langchain.backends.reference.memory import estimate_memory, estimate_placement

_EXPORTS = {
    "BlipCaptionBackend": "blip",
    "BlipVqaBackend": "blip",
    "GroundingDinoBackend": "grounding_dino",
    "SamBackend": "sam",
    "GroundedSamBackend": "sam",
    "StableDiffusionBackend": "diffusion",
    "ControlNetBackend": "diffusion",
    "InstructPix2PixBackend": "diffusion",
    "InpaintingBackend": "diffusion",
    "DptDepthBackend": "dpt",
    "DptNormalBackend": "dpt",
    "ReferenceBackend": "base",
}

__all__ = sorted(_EXPORTS) + ["estimate_memory", "estimate_placement"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
