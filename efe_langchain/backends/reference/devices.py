"""Device placement as GPT4Tools writes it (``Text2Box_cuda:0,Segmenting_cuda:0,Inpainting_cuda:1``).

fp16 on a GPU halves memory at no visible cost for these models (GPT4Tools does the same); CPU
kernels for fp16 are slow or missing, so CPU runs in fp32.
"""

from __future__ import annotations

import re

__all__ = [
    "REFERENCE_BACKENDS",
    "dtype_name_for",
    "parse_load_spec",
    "torch_dtype",
    "validate_device",
]

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")

# GPT4Tools `--load` class name -> the reference backend class(es) that implement it, by dotted path
# (strings, so that listing them imports nothing heavy).
_P = "efe_langchain.backends.reference."
REFERENCE_BACKENDS: dict[str, tuple[str, ...]] = {
    "ImageCaptioning": (_P + "blip.BlipCaptionBackend",),
    "VisualQuestionAnswering": (_P + "blip.BlipVqaBackend",),
    "Text2Box": (_P + "grounding_dino.GroundingDinoBackend",),
    "Segmenting": (_P + "sam.SamBackend",),
    "ObjectSegmenting": (_P + "sam.GroundedSamBackend",),
    "Inpainting": (_P + "diffusion.InpaintingBackend",),
    "ImageEditing": (_P + "sam.GroundedSamBackend", _P + "diffusion.InpaintingBackend"),
    "Text2Image": (_P + "diffusion.StableDiffusionBackend",),
    "InstructPix2Pix": (_P + "diffusion.InstructPix2PixBackend",),
    "Image2Depth": (_P + "dpt.DptDepthBackend",),
    "Image2Normal": (_P + "dpt.DptNormalBackend",),
    **{
        f"{name}Text2Image": (_P + "diffusion.ControlNetBackend",)
        for name in ("Canny", "Line", "Hed", "Scribble", "Pose", "Seg", "Depth", "Normal")
    },
}


def validate_device(device: str) -> str:
    """``device`` normalised (``"cuda"`` -> ``"cuda:0"``); ValueError names the accepted forms."""
    text = str(device).strip().lower()
    if not _DEVICE.match(text):
        raise ValueError(f"unknown device {device!r}: use cpu, mps, cuda or cuda:N")
    return "cuda:0" if text == "cuda" else text


def dtype_name_for(device: str) -> str:
    return "float16" if validate_device(device).startswith("cuda") else "float32"


def torch_dtype(name: str):
    import torch

    value = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}: use float32, float16 or bfloat16")
    return value


def parse_load_spec(spec: str) -> dict[str, str]:
    """``"Text2Box_cuda:0,Segmenting_cuda:0"`` -> ``{"Text2Box": "cuda:0", "Segmenting": "cuda:0"}``.

    The class name is everything before the last ``_`` (GPT4Tools names have none, but
    ``ImageEditing.remove``-style names are kept whole); a bad device raises ValueError.
    """
    placement: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in str(spec).split(","))):
        name, sep, device = item.rpartition("_")
        if not sep or not name:
            raise ValueError(f"bad load spec {item!r}: expected Name_device, e.g. Text2Box_cuda:0")
        placement[name] = validate_device(device)
    return placement
