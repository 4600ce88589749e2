"""BLIP captioning and visual question answering (GPT4Tools ImageCaptioning, VisualQuestionAnswering).

Through the model classes: the ``visual-question-answering`` pipeline task is gone from recent
transformers, and the classes are what GPT4Tools calls anyway (processor -> generate -> decode).
"""

from __future__ import annotations

from typing import ClassVar

from efe_langchain.backends.reference.base import ReferenceBackend
from efe_langchain.backends.reference.shared import shared_processor_and_model

__all__ = ["BlipCaptionBackend", "BlipVqaBackend", "load_blip"]


def load_blip(location: str, model_class: str, device: str, dtype: str):
    """``(processor, model)`` for a BLIP folder, cached process-wide."""
    return shared_processor_and_model(model_class, "BlipProcessor", model_class, location, device, dtype)


class _Blip(ReferenceBackend):
    model_class: ClassVar[str] = ""

    def _load(self) -> None:
        self.processor, self.model = load_blip(self.require(), self.model_class, self.device, self.dtype_name)

    def _generate(self, image, question: str | None) -> str:
        import torch

        self.load()
        image = image.convert("RGB")
        if question is None:
            inputs = self.processor(images=image, return_tensors="pt")
        else:
            inputs = self.processor(images=image, text=question, return_tensors="pt")
        inputs = inputs.to(self.device, self.torch_dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=int(self.option("max_new_tokens", 30)))
        return self.processor.decode(out[0], skip_special_tokens=True).strip()


class BlipCaptionBackend(_Blip):
    name: ClassVar[str] = "blip-caption"
    describes: ClassVar[str] = "BLIP image captioning"
    capabilities: ClassVar[tuple[str, ...]] = ("caption",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "blip-caption"}
    model_class: ClassVar[str] = "BlipForConditionalGeneration"

    def caption(self, image) -> str:
        return self._generate(image, None)


class BlipVqaBackend(_Blip):
    name: ClassVar[str] = "blip-vqa"
    describes: ClassVar[str] = "BLIP visual question answering"
    capabilities: ClassVar[tuple[str, ...]] = ("vqa",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "blip-vqa"}
    model_class: ClassVar[str] = "BlipForQuestionAnswering"

    def vqa(self, image, question: str) -> str:
        question = str(question or "").strip()
        if not question:
            raise ValueError("vqa needs a question")
        return self._generate(image, question)
