"""Describing images in words: captioning and visual question answering."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from efe_langchain.tools.base import IMAGE_PATH_HELP, EFETool, ImageInput

__all__ = ["ImageCaptioning", "VisualQuestionAnswering", "QuestionInput"]


class QuestionInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    question: str = Field(description="the question about the image")


class ImageCaptioning(EFETool):
    """What is in a photo, in one sentence; also describes every upload for the agent."""

    title: ClassVar[str] = "Get Photo Description"
    plans: ClassVar = (("caption",),)
    args_schema: type[BaseModel] = ImageInput

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        caption = str(self.backend("caption").caption(image)).strip()
        return caption, {"source": image_path, "caption": caption}


class VisualQuestionAnswering(EFETool):
    title: ClassVar[str] = "Answer Question About The Image"
    plans: ClassVar = (("vqa",),)
    args_schema: type[BaseModel] = QuestionInput

    def _execute(self, image_path: str, question: str) -> tuple[str, dict]:
        image = self.open(image_path)
        answer = str(self.backend("vqa").vqa(image, question)).strip()
        return answer, {"source": image_path, "question": question, "answer": answer}
