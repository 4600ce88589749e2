"""Editing a photo: instructions (InstructPix2Pix), removing and replacing objects.

Remove and replace are GPT4Tools' ImageEditing: find the object's mask (segment the given object),
then inpaint it: with the prompt "background" to remove, with the new object to replace.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from efe_langchain.tools.base import IMAGE_PATH_HELP, SEED_HELP, EFETool
from efe_langchain.tools.detection import nothing_found
from efe_langchain.tools.segmentation import object_mask

__all__ = ["InstructPix2Pix", "RemoveObject", "ReplaceObject", "InstructInput", "RemoveInput", "ReplaceInput"]

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


def _inpaint_object(tool: EFETool, image_path: str, target: str, prompt: str, seed: int | None):
    image = tool.open(image_path)
    mask, boxes = object_mask(tool, image, target)
    if not mask.any():
        cap = "segment_object" if tool.has("segment_object") else "detect"
        return None, nothing_found(tool, cap, repr(target), image_path), {"source": image_path, "query": target}
    out = tool.backend("inpaint").inpaint(image, mask, prompt, seed)
    rel, artifact = tool.save_generated(out, image_path, seed, image.size)
    return rel, rel, {**artifact, "query": target, "boxes": boxes, "mask_fraction": round(float(np.mean(mask)), 4)}


class RemoveObject(EFETool):
    title: ClassVar[str] = "Remove Something From The Photo"
    plans: ClassVar = (("segment_object", "inpaint"), ("detect", "segment_box", "inpaint"))
    args_schema: type[BaseModel] = RemoveInput
    output_tag: ClassVar[str] = "remove-something"

    def _execute(self, image_path: str, text: str, seed: int | None = None) -> tuple[str, dict]:
        _, content, artifact = _inpaint_object(self, image_path, text, "background", seed)
        return content, {**artifact, "removed": text}


class ReplaceObject(EFETool):
    title: ClassVar[str] = "Replace Something From The Photo"
    plans: ClassVar = (("segment_object", "inpaint"), ("detect", "segment_box", "inpaint"))
    # Filling a hole from its surroundings (Telea) cannot draw the new object.
    needs_prompt: ClassVar[frozenset[str]] = frozenset({"inpaint"})
    args_schema: type[BaseModel] = ReplaceInput
    output_tag: ClassVar[str] = "replace-something"

    def _execute(
        self, image_path: str, object_to_replace: str, replace_with: str, seed: int | None = None
    ) -> tuple[str, dict]:
        _, content, artifact = _inpaint_object(self, image_path, object_to_replace, replace_with, seed)
        return content, {**artifact, "replaced": object_to_replace, "replaced_with": replace_with}
