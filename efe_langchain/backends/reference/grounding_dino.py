"""GroundingDINO text-to-box (GPT4Tools Text2Box) through transformers' zero-shot detection classes."""

from __future__ import annotations

from typing import ClassVar

from efe_langchain.backends.reference.base import ReferenceBackend
from efe_langchain.backends.reference.shared import shared_processor_and_model

__all__ = ["GroundingDinoBackend", "detect_boxes", "grounding_caption", "load_grounding_dino"]

# GPT4Tools / Visual ChatGPT Text2Box thresholds
BOX_THRESHOLD = 0.3
TEXT_THRESHOLD = 0.25


def load_grounding_dino(location: str, device: str, dtype: str):
    """``(processor, model)`` for a GroundingDINO folder, cached process-wide."""
    return shared_processor_and_model(
        "grounding-dino", "AutoProcessor", "AutoModelForZeroShotObjectDetection", location, device, dtype
    )


def grounding_caption(text: str) -> str:
    """GroundingDINO expects lower-case phrases each ending in a full stop ("a cat. a dog.")."""
    phrases = [p.strip().lower() for p in str(text).replace(",", ".").split(".")]
    phrases = [p for p in phrases if p]
    if not phrases:
        raise ValueError("detection needs a description of the object to find")
    return ". ".join(phrases) + "."


def detect_boxes(processor, model, image, text: str, box_threshold: float, text_threshold: float) -> list[dict]:
    """Boxes in image pixels, best first: ``[{"box": [x0, y0, x1, y1], "score": s, "label": l}]``."""
    import torch

    image = image.convert("RGB")
    inputs = processor(images=image, text=grounding_caption(text), return_tensors="pt")
    inputs = inputs.to(model.device, model.dtype)
    with torch.inference_mode():
        outputs = model(**inputs)
    (result,) = processor.post_process_grounded_object_detection(
        outputs,
        inputs["input_ids"],
        threshold=box_threshold,
        text_threshold=text_threshold,
        target_sizes=[(image.height, image.width)],
    )
    # "labels" becomes integer ids in newer transformers; "text_labels" holds the phrases.
    labels = result["text_labels"] if "text_labels" in result else result["labels"]
    found = []
    for box, score, label in zip(result["boxes"].float().tolist(), result["scores"].float().tolist(), labels):
        x0, y0, x1, y1 = box
        box = [max(0.0, x0), max(0.0, y0), min(float(image.width), x1), min(float(image.height), y1)]
        found.append({"box": [round(v, 2) for v in box], "score": round(float(score), 4), "label": str(label)})
    return sorted(found, key=lambda d: -d["score"])


class GroundingDinoBackend(ReferenceBackend):
    name: ClassVar[str] = "grounding-dino"
    describes: ClassVar[str] = "GroundingDINO open-vocabulary detection"
    capabilities: ClassVar[tuple[str, ...]] = ("detect",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "grounding-dino"}

    def _load(self) -> None:
        self.processor, self.model = load_grounding_dino(self.require(), self.device, self.dtype_name)

    def detect(self, image, text: str) -> list[dict]:
        self.load()
        return detect_boxes(
            self.processor,
            self.model,
            image,
            text,
            float(self.option("box_threshold", BOX_THRESHOLD)),
            float(self.option("text_threshold", TEXT_THRESHOLD)),
        )
