"""Tools beyond GPT4Tools' 24: reading text (OCR), rating quality, enhancing, blurring the background.

Their names and descriptions are our own, in GPT4Tools' style, and deliberately differ from the
unseen-tools benchmark's names (``heldout_tools.txt``), which training data must never contain.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image, ImageFilter
from pydantic import BaseModel

from efe_langchain.tools.base import EFETool, ImageInput
from efe_langchain.tools.detection import json_box, json_score, nothing_found
from efe_langchain.tools.segmentation import SubjectMasking

__all__ = ["TextReading", "QualityRating", "ImageEnhancing", "BackgroundBlurring"]


class TextReading(EFETool):
    title: ClassVar[str] = "Read Text On Image"
    blurb: ClassVar[str] = (
        "useful when you want to read the text written in the image. like: read the text in this image, or "
        "what does the sign say, or recognize the words in this picture. The input to this tool should be a "
        "string, representing the image_path"
    )
    load_name: ClassVar[str] = "TextReading"
    plans: ClassVar = (("ocr",),)
    args_schema: type[BaseModel] = ImageInput

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        lines = [
            {"text": str(r["text"]), "box": json_box(r["box"]), "score": json_score(r)}
            for r in self.backend("ocr").ocr(image) or []
            if str(r.get("text", "")).strip()
        ]
        if not lines:
            return nothing_found(self, "ocr", "text", image_path), {"source": image_path, "lines": []}
        # Reading order: top to bottom, then left to right within a line of text.
        lines.sort(key=lambda r: (round(r["box"][1] / 10), r["box"][0]))
        text = "\n".join(r["text"] for r in lines)
        return f"Text read in {image_path}:\n{text}", {"source": image_path, "text": text, "lines": lines}


class QualityRating(EFETool):
    title: ClassVar[str] = "Rate The Quality Of Image"
    blurb: ClassVar[str] = (
        "useful when you want to know how good the image quality is, like its sharpness, exposure, contrast, "
        "noise and colourfulness. like: is this photo blurry, or check the quality of this image, or is this "
        "picture too dark. The input to this tool should be a string, representing the image_path"
    )
    load_name: ClassVar[str] = "QualityRating"
    plans: ClassVar = (("quality",),)
    args_schema: type[BaseModel] = ImageInput

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        scores = dict(self.backend("quality").quality(image))
        verdict = scores.get("verdict")
        numbers = ", ".join(f"{k} {v}" for k, v in scores.items() if k != "verdict")
        head = f"Quality of {image_path}: {verdict}." if verdict else f"Quality of {image_path}:"
        return f"{head} Measures: {numbers}", {"source": image_path, "scores": scores}


class ImageEnhancing(EFETool):
    title: ClassVar[str] = "Enhance The Colors And Contrast Of Image"
    blurb: ClassVar[str] = (
        "useful when you want to automatically improve a dull, dark or colour-cast photo. like: enhance this "
        "image, or fix the colors of this photo, or make this picture less dull. The input to this tool "
        "should be a string, representing the image_path"
    )
    load_name: ClassVar[str] = "ImageEnhancing"
    plans: ClassVar = (("enhance",),)
    args_schema: type[BaseModel] = ImageInput
    output_tag: ClassVar[str] = "enhanced"

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        rel, artifact = self.save(self.backend("enhance").enhance(image), image_path)
        return rel, artifact


class BackgroundBlurring(SubjectMasking):
    title: ClassVar[str] = "Blur The Background Of Image"
    blurb: ClassVar[str] = (
        "useful when you want to keep the main subject sharp and blur everything behind it, like a portrait "
        "photo. like: blur the background, or make the background out of focus, or add a portrait effect. "
        "The input to this tool should be a string, representing the image_path"
    )
    load_name: ClassVar[str] = "BackgroundBlurring"
    output_tag: ClassVar[str] = "blur-background"

    def compose(self, image: Image.Image, mask: np.ndarray) -> tuple[Image.Image, dict]:
        radius = max(4, round(max(image.size) / 64))
        blurred = image.filter(ImageFilter.GaussianBlur(radius))
        # A soft edge: a hard cut between sharp and blurred pixels looks pasted on.
        soft = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
        return Image.composite(image, blurred, soft), {"blur_radius": radius}
