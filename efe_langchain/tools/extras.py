"""Tools beyond GPT4Tools' 24: reading text (OCR) and rating image quality.

Their names and descriptions are our own, in GPT4Tools' style, and deliberately differ from the
unseen-tools benchmark's names (``heldout_tools.txt``), which training data must never contain.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from efe_langchain.tools.base import EFETool, ImageInput
from efe_langchain.tools.detection import nothing_found

__all__ = ["TextReading", "QualityRating"]


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
            {"text": str(r["text"]), "box": [round(float(v), 1) for v in r["box"]], "score": round(float(r.get("score", 1.0)), 4)}
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
