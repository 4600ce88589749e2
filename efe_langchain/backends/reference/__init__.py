"""Reference backends: the GPT4Tools checkpoints through transformers and diffusers.

Each class is a ``Backend`` of kind ``"reference"``; heavy imports happen on ``load()``, so
importing this package (as ``efe tools`` does to list backends) loads no model library.

Classes (stable names; the tool registry refers to them by dotted path):

=======================  =====================  ==============================================
class                    capabilities           default checkpoint(s)
=======================  =====================  ==============================================
BlipCaptionBackend       caption                Salesforce/blip-image-captioning-base
BlipVqaBackend           vqa                    Salesforce/blip-vqa-base
GroundingDinoBackend     detect                 IDEA-Research/grounding-dino-tiny
SamBackend               segment_all,           facebook/sam-vit-huge
                         segment_box
GroundedSamBackend       segment_object         grounding-dino-tiny + sam-vit-huge
StableDiffusionBackend   text2image             runwayml/stable-diffusion-v1-5
ControlNetBackend        controlnet             SD 1.5 + fusing/stable-diffusion-v1-5-controlnet-*
InstructPix2PixBackend   instruct               timbrooks/instruct-pix2pix
InpaintingBackend        inpaint                runwayml/stable-diffusion-inpainting
DptDepthBackend          depth                  Intel/dpt-large
DptNormalBackend         normal                 Intel/dpt-hybrid-midas
=======================  =====================  ==============================================

Weights: put each checkpoint under ``$EFE_MODEL_DIR/<hub id>`` (``efe tools`` prints the
``hf download`` command for every missing one), or pass a folder / hub id as an option
(``checkpoint=``, ``base=``, ``detector=``, ``controlnet_<condition>=``); the Hugging Face cache
is used when it has them. ``EFE_ALLOW_DOWNLOAD=1`` lets a first use download from the hub.
Models are shared process-wide per (checkpoint, device, dtype) (see ``shared``); GPUs run fp16,
CPUs fp32 (``dtype=`` overrides). ``estimate_memory`` / ``estimate_placement`` give the memory a
tool or a GPT4Tools ``--load`` placement needs, without loading anything.
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
