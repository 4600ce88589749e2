"""Drawing tool results onto images: boxes with labels, mask overlays, segment colour maps."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["draw_boxes", "overlay_mask", "colour_segments", "palette"]


def palette(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct bright colours (uint8 RGB), the same for the same ``n`` and ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 256, size=(max(n, 1), 3), dtype=np.uint8)


def draw_boxes(image: Image.Image, items: list[dict], colour=(255, 0, 0)) -> Image.Image:
    """Boxes (``box=[x0,y0,x1,y1]``) with ``label``/``score`` written above each, as GPT4Tools draws."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 256))
    for item in items:
        x0, y0, x1, y1 = (float(v) for v in item["box"])
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        text = str(item.get("label") or item.get("text") or "")
        if "score" in item and item["score"] is not None:
            text = f"{text} {float(item['score']):.2f}".strip()
        if text:
            tx, ty = x0 + 2, max(0.0, y0 - 12)
            left, top, right, bottom = draw.textbbox((tx, ty), text)
            draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=colour)
            draw.text((tx, ty), text, fill=(255, 255, 255))
    return out


def overlay_mask(image: Image.Image, mask: np.ndarray, colour=(30, 144, 255), alpha: float = 0.5) -> Image.Image:
    """The image with ``mask`` tinted (SAM's demo style)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    arr[m] = (1 - alpha) * arr[m] + alpha * np.asarray(colour, dtype=np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def colour_segments(labels: np.ndarray, image: Image.Image | None = None, alpha: float = 1.0) -> Image.Image:
    """A label map as colours (label 0 stays black / the image), optionally blended on the image."""
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if labels.size else 1
    colours = palette(n)
    colours[0] = 0
    seg = colours[labels]
    if image is None or alpha >= 1.0:
        return Image.fromarray(seg)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    blended = np.where(labels[..., None] > 0, (1 - alpha) * base + alpha * seg, base)
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))
