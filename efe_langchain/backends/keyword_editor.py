"""A classical stand-in for InstructPix2Pix: whole-image adjustments named in the instruction.

InstructPix2Pix follows any instruction but needs ~2 GB of weights. Out of the box, "Instruct Image
Using Text" runs this editor instead: it looks for the adjustments it knows (black and white,
sepia, blur, brighter, mirror, rotate 90 degrees, cartoon ...) in the instruction and applies them
in the order they are named. It changes the whole picture only and refuses, with the list of what it
knows, any instruction that names none of them, rather than returning an untouched image.
"""

from __future__ import annotations

import re
from typing import Callable, ClassVar

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from efe_langchain.backends.base import Backend

__all__ = ["KeywordEditor", "EDITS"]


def _grey(image: Image.Image, text: str) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _sepia(image: Image.Image, text: str) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32)
    # The usual sepia matrix (Microsoft's photo filter): warm browns from the luminance.
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)
    return Image.fromarray(np.clip(arr @ m.T, 0, 255).astype(np.uint8))


def _invert(image: Image.Image, text: str) -> Image.Image:
    return ImageOps.invert(image)


def _blur(image: Image.Image, text: str) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=max(2.0, max(image.size) / 128)))


def _sharpen(image: Image.Image, text: str) -> Image.Image:
    return image.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=2))


def _brighter(image: Image.Image, text: str) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.35)


def _darker(image: Image.Image, text: str) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(0.65)


def _contrast(image: Image.Image, text: str) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(1.5)


def _saturate(image: Image.Image, text: str) -> Image.Image:
    return ImageEnhance.Color(image).enhance(1.6)


def _tint(image: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32) * np.array(gains, dtype=np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _warm(image: Image.Image, text: str) -> Image.Image:
    return _tint(image, (1.12, 1.02, 0.85))


def _cool(image: Image.Image, text: str) -> Image.Image:
    return _tint(image, (0.85, 1.0, 1.12))


def _mirror(image: Image.Image, text: str) -> Image.Image:
    return ImageOps.mirror(image)


def _flip(image: Image.Image, text: str) -> Image.Image:
    return ImageOps.flip(image)


def _rotate(image: Image.Image, text: str) -> Image.Image:
    m = re.search(r"(-?\d{1,3})\s*(?:°|deg|degrees?)?", text)
    degrees = int(m.group(1)) if m else 90
    # People mean clockwise unless they say otherwise; PIL turns counter-clockwise.
    counter = re.search(r"counter|anti[- ]?clockwise|to the left", text) is not None
    return image.rotate(degrees if counter else -degrees, expand=True, resample=Image.BICUBIC)


def _cartoon(image: Image.Image, text: str) -> Image.Image:
    import cv2

    arr = np.asarray(image)
    smooth = arr
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 9, 75, 75)
    grey = cv2.medianBlur(cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), 7)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 2)
    levels = (smooth // 32) * 32 + 16  # flat colour areas
    return Image.fromarray(np.where(edges[..., None] > 0, levels, 0).astype(np.uint8))


def _pencil(image: Image.Image, text: str) -> Image.Image:
    import cv2

    grey, _ = cv2.pencilSketch(np.asarray(image), sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return Image.fromarray(grey).convert("RGB")


def _painting(image: Image.Image, text: str) -> Image.Image:
    import cv2

    return Image.fromarray(cv2.stylization(np.asarray(image), sigma_s=60, sigma_r=0.45))


def _pixelate(image: Image.Image, text: str) -> Image.Image:
    w, h = image.size
    block = max(4, max(w, h) // 48)
    small = image.resize((max(1, w // block), max(1, h // block)), Image.BILINEAR)
    return small.resize((w, h), Image.NEAREST)


# (what it is called in messages, what in an instruction asks for it, the edit). Earlier entries win
# where two patterns overlap ("less bright" is darker, not brighter).
EDITS: tuple[tuple[str, str, Callable[[Image.Image, str], Image.Image]], ...] = (
    ("black and white", r"black[- ]and[- ]white|gr[ae]y ?scale|monochrome|desaturate|b&w|no colou?rs?", _grey),
    ("sepia", r"sepia|vintage|old[- ]fashioned|old photo", _sepia),
    ("invert", r"invert|negative", _invert),
    ("darker", r"darker|darken|dimmer|less bright|too bright", _darker),
    ("brighter", r"brighter|brighten|lighter|lighten|too dark", _brighter),
    ("sharpen", r"sharpen|sharper|crisper", _sharpen),
    ("blur", r"blur|soften|out of focus", _blur),
    ("more contrast", r"contrast", _contrast),
    ("more colourful", r"saturat\w*|vivid|colou?rful|pop", _saturate),
    ("warmer", r"warmer|warm(?: it)? up|warm tones?", _warm),
    ("cooler", r"cooler|cool(?: it)? down|cold tones?|cool tones?", _cool),
    ("upside down", r"upside[- ]down|flip\w*(?: it)? vertical\w*", _flip),
    ("mirror", r"mirror\w*|flip\w*(?: it)?(?: horizontal\w*)?|left to right", _mirror),
    ("rotate", r"rotat\w*(?: it)?(?: by)?(?: -?\d{1,3}(?:\s*(?:°|deg\w*))?)?(?: counter[- ]?clockwise| anti[- ]?clockwise| clockwise)?"
               r"|turn\w*(?: it)?(?: by)? -?\d{1,3}(?:\s*(?:°|deg\w*))?", _rotate),
    ("cartoon", r"cartoon\w*|comic|anime", _cartoon),
    ("pencil sketch", r"pencil|sketch\w*|drawing", _pencil),
    ("painting", r"paint\w*|watercolou?r|oil", _painting),
    ("pixelate", r"pixel\w*|8[- ]?bit|mosaic", _pixelate),
)
KNOWN = ", ".join(name for name, _, _ in EDITS)
_EDIT_BY_NAME = {name: fn for name, _, fn in EDITS}


def parse_instruction(text: str) -> list[tuple[str, str]]:
    """``(edit name, the words that asked for it)`` for each known edit, in the order named."""
    lowered = text.lower()
    found = []
    for priority, (name, pattern, _) in enumerate(EDITS):
        for m in re.finditer(rf"\b(?:{pattern})", lowered):
            found.append((m.start(), priority, m.end(), name))
    chosen, end, seen = [], -1, set()
    for start, _, stop, name in sorted(found):
        if start >= end and name not in seen:
            chosen.append((name, lowered[start:stop]))
            seen.add(name)
            end = stop
    return chosen


class KeywordEditor(Backend):
    name = "keyword-editor"
    kind = "classical"
    label = (
        "classical keyword editor (Pillow/OpenCV), a stand-in for InstructPix2Pix: applies only the "
        f"whole-image adjustments named in the instruction ({KNOWN}); it cannot add, remove or change objects"
    )
    capabilities = ("instruct",)
    requires = ("cv2",)
    install_hint = "pip install 'opencv-python-headless>=4.9,<5'"

    def instruct(self, image: Image.Image, instruction: str, seed: int | None = None) -> Image.Image:
        edits = parse_instruction(instruction)
        if not edits:
            raise ValueError(
                f"the classical keyword editor found nothing it can do in {instruction!r}; it only knows: {KNOWN}. "
                "Any other instruction needs InstructPix2Pix's weights (see `efe tools`)."
            )
        out = image.convert("RGB")
        for name, words in edits:
            out = _EDIT_BY_NAME[name](out, words)
        return out
