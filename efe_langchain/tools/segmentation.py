"""Segmenting: every region of an image, a named object, and the main subject (background removal)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel

from efe_langchain.tools.base import EFETool, ImageInput
from efe_langchain.tools.detection import ObjectInput, find_boxes, query_not_found
from efe_langchain.tools.drawing import colour_segments, overlay_mask

__all__ = [
    "Segmenting",
    "ObjectSegmenting",
    "SubjectMasking",
    "BackgroundRemoval",
    "object_mask",
    "object_not_found",
    "subject_mask",
]


def object_mask(tool: EFETool, image: Image.Image, text: str) -> tuple[np.ndarray, list[dict]]:
    """The mask of every ``text`` object: one text-prompted segmenter, or boxes then box masks.

    The second way is GPT4Tools' ObjectSegmenting (GroundingDINO boxes, then SAM on each box);
    it works with any detector and any box segmenter the registry bound.
    """
    w, h = image.size
    if tool.has("segment_object"):
        mask = np.asarray(tool.backend("segment_object").segment_object(image, text), dtype=bool)
        return mask, []
    boxes = find_boxes(tool, image, text)
    mask = np.zeros((h, w), dtype=bool)
    segmenter = tool.backend("segment_box") if boxes else None
    for item in boxes:
        mask |= np.asarray(segmenter.segment_box(image, item["box"]), dtype=bool)
    return mask, boxes


def object_not_found(tool: EFETool, query: str, image_path: str, **extra) -> tuple[str, dict]:
    """The result when ``object_mask`` found nothing, naming the backend that looked."""
    capability = "segment_object" if tool.has("segment_object") else "detect"
    return query_not_found(tool, capability, query, image_path, **extra)


def subject_mask(tool: EFETool, image: Image.Image) -> tuple[np.ndarray | None, str | None]:
    """The main subject: people when a person segmenter finds some, else the generic foreground cut.

    Returns ``(mask, capability used)``, or ``(None, None)`` when nothing could be separated.
    """
    if tool.has("person_mask"):
        m = np.asarray(tool.backend("person_mask").person_mask(image), dtype=bool)
        if m.mean() > 0.01:
            return m, "person_mask"
    if tool.has("foreground_mask"):
        m = np.asarray(tool.backend("foreground_mask").foreground_mask(image), dtype=bool)
        if m.any():
            return m, "foreground_mask"
    return None, None


class Segmenting(EFETool):
    """Every region as a colour map (the input GPT4Tools' segmentation ControlNet takes)."""

    title: ClassVar[str] = "Segment the Image"
    plans: ClassVar = (("segment_all",),)
    args_schema: type[BaseModel] = ImageInput
    output_tag: ClassVar[str] = "segmentation"

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        labels = np.asarray(self.backend("segment_all").segment_all(image))
        if labels.shape != (image.size[1], image.size[0]):
            raise ValueError(f"the segmenter returned a {labels.shape} map for a {image.size} image")
        rel, artifact = self.save(colour_segments(labels), image_path)
        regions = int(len(np.unique(labels[labels > 0])))
        return rel, {**artifact, "regions": regions}


class ObjectSegmenting(EFETool):
    title: ClassVar[str] = "Segment the given object"
    plans: ClassVar = (("segment_object",), ("detect", "segment_box"))
    args_schema: type[BaseModel] = ObjectInput
    output_tag: ClassVar[str] = "segmentation"

    def _execute(self, image_path: str, text: str) -> tuple[str, dict]:
        image = self.open(image_path)
        mask, boxes = object_mask(self, image, text)
        if not mask.any():
            return object_not_found(self, text, image_path, boxes=boxes)
        rel, artifact = self.save(overlay_mask(image, mask), image_path)
        return rel, {**artifact, "query": text, "boxes": boxes, "mask_fraction": round(float(mask.mean()), 4)}


class SubjectMasking(EFETool):
    """Separate the main subject (``subject_mask``), then make a new image from the image and
    that mask (``compose``); the artifact says which segmenter gave the mask."""

    # A person segmenter is far better on people; the generic foreground cut covers the rest.
    plans: ClassVar = (("person_mask", "foreground_mask"), ("foreground_mask",), ("person_mask",))
    args_schema: type[BaseModel] = ImageInput

    def compose(self, image: Image.Image, mask: np.ndarray) -> tuple[Image.Image, dict]:  # pragma: no cover
        raise NotImplementedError

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        mask, used = subject_mask(self, image)
        if mask is None:
            return f"No subject could be separated from the background of {image_path}.", {"source": image_path}
        out, extra = self.compose(image, mask)
        rel, artifact = self.save(out, image_path)
        b = self.backends[used]
        return rel, {**artifact, "mask_fraction": round(float(mask.mean()), 4), **extra,
                     "mask_from": {"capability": used, "name": b.name, "label": b.label}}  # fmt: skip


class BackgroundRemoval(SubjectMasking):
    title: ClassVar[str] = "Remove The Background Of Image"
    blurb: ClassVar[str] = (
        "useful when you want to remove the background of the image and keep only the main subject. like: "
        "remove the background, or cut out the subject on a white background, or delete the background of "
        "this photo. The input to this tool should be a string, representing the image_path"
    )
    load_name: ClassVar[str] = "BackgroundRemoval"
    output_tag: ClassVar[str] = "no-background"

    def compose(self, image: Image.Image, mask: np.ndarray) -> tuple[Image.Image, dict]:
        arr = np.asarray(image.convert("RGB")).copy()
        arr[~mask] = 255
        return Image.fromarray(arr), {}
