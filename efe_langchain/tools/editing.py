"""Editing a photo: instructions (InstructPix2Pix), removing and replacing objects.

Remove and replace are GPT4Tools' ImageEditing: find the object's mask (segment the given object),
widen it (20 px at 512 px, as GPT4Tools does), then inpaint it: with the prompt "background" to
remove, with the new object to replace.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from efe_langchain.tools.base import IMAGE_PATH_HELP, SEED_HELP, EFETool
from efe_langchain.tools.segmentation import object_mask, object_not_found

__all__ = [
    "InstructPix2Pix",
    "ObjectInpainting",
    "RemoveObject",
    "ReplaceObject",
    "InstructInput",
    "RemoveInput",
    "ReplaceInput",
    "MASK_PADDING",
    "pad_mask",
    "padding_pixels",
]

class InstructInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    text: str = Field(description="the instruction, e.g. 'make it look like a painting'")
    seed: int | None = Field(default=None, description=SEED_HELP)


class RemoveInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    text: str = Field(description="the object to be removed")
    seed: int | None = Field(default=None, description=SEED_HELP)


class ReplaceInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    object_to_replace: str = Field(description="the object to be replaced")
    replace_with: str = Field(description="the object to put in its place")
    seed: int | None = Field(default=None, description=SEED_HELP)


class InstructPix2Pix(EFETool):
    title: ClassVar[str] = "Instruct Image Using Text"
    plans: ClassVar = (("instruct",),)
    args_schema: type[BaseModel] = InstructInput
    output_tag: ClassVar[str] = "pix2pix"

    def _execute(self, image_path: str, text: str, seed: int | None = None) -> tuple[str, dict]:
        image = self.open(image_path)
        out = self.backend("instruct").instruct(image, text, seed)
        rel, artifact = self.save_generated(out, image_path, seed, image.size)
        return rel, {**artifact, "instruction": text}


# GPT4Tools widens the object's mask by 20 px on its 512 px images (ImageEditing.pad_edge: every
# pixel within 20 px, a square neighbourhood) before inpainting, so the object's outline and
# shadow do not survive the fill. The width scales with the image: 20 px of 512 px.
MASK_PADDING = 20
PADDING_REFERENCE_SIDE = 512


def padding_pixels(padding: int, size: tuple[int, int]) -> int:
    """``padding`` (pixels at GPT4Tools' 512 px) for an image of ``size``."""
    if padding <= 0:
        return 0
    return max(1, round(padding * max(size) / PADDING_REFERENCE_SIDE))


def pad_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Every pixel within ``pixels`` (Chebyshev distance) of the mask, as GPT4Tools' pad_edge."""
    if pixels <= 0:
        return np.asarray(mask, dtype=bool)
    import cv2

    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(np.asarray(mask, dtype=np.uint8), kernel).astype(bool)


class ObjectInpainting(EFETool):
    """Find an object's mask (segment the given object), widen it, inpaint it with a prompt."""

    plans: ClassVar = (("segment_object", "inpaint"), ("detect", "segment_box", "inpaint"))
    mask_padding: int = Field(
        default=MASK_PADDING, ge=0, description="pixels the object mask is widened by, at 512 px (GPT4Tools: 20)"
    )

    def inpaint_object(self, image_path: str, target: str, prompt: str, seed: int | None) -> tuple[str, dict]:
        image = self.open(image_path)
        mask, boxes = object_mask(self, image, target)
        if not mask.any():
            return object_not_found(self, target, image_path)
        pixels = padding_pixels(self.mask_padding, image.size)
        padded = pad_mask(mask, pixels)
        out = self.backend("inpaint").inpaint(image, padded, prompt, seed)
        rel, artifact = self.save_generated(out, image_path, seed, image.size)
        return rel, {**artifact, "query": target, "boxes": boxes, "mask_fraction": round(float(np.mean(mask)), 4),
                     "mask_padding": pixels, "inpainted_fraction": round(float(np.mean(padded)), 4)}  # fmt: skip


class RemoveObject(ObjectInpainting):
    title: ClassVar[str] = "Remove Something From The Photo"
    args_schema: type[BaseModel] = RemoveInput
    output_tag: ClassVar[str] = "remove-something"

    def _execute(self, image_path: str, text: str, seed: int | None = None) -> tuple[str, dict]:
        content, artifact = self.inpaint_object(image_path, text, "background", seed)
        return content, {**artifact, "removed": text}


class ReplaceObject(ObjectInpainting):
    title: ClassVar[str] = "Replace Something From The Photo"
    # Filling a hole from its surroundings (Telea) cannot draw the new object.
    needs_prompt: ClassVar[frozenset[str]] = frozenset({"inpaint"})
    args_schema: type[BaseModel] = ReplaceInput
    output_tag: ClassVar[str] = "replace-something"

    def _execute(
        self, image_path: str, object_to_replace: str, replace_with: str, seed: int | None = None
    ) -> tuple[str, dict]:
        content, artifact = self.inpaint_object(image_path, object_to_replace, replace_with, seed)
        return content, {**artifact, "replaced": object_to_replace, "replaced_with": replace_with}
