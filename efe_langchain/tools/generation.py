"""Making new images: from text (Stable Diffusion) and from a condition image plus text (ControlNet)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from efe_langchain.tools.base import SEED_HELP, EFETool

__all__ = [
    "Text2Image",
    "ControlNetTool",
    "CannyText2Image",
    "LineText2Image",
    "HedText2Image",
    "ScribbleText2Image",
    "PoseText2Image",
    "SegText2Image",
    "DepthText2Image",
    "NormalText2Image",
    "PromptInput",
    "ConditionInput",
]

class PromptInput(BaseModel):
    text: str = Field(description="the text used to generate the image")
    seed: int | None = Field(default=None, description=SEED_HELP)


class ConditionInput(BaseModel):
    image_path: str = Field(description="path of the condition image (edge, line, pose... map) in the workspace")
    text: str = Field(description="the user description of the image to generate")
    seed: int | None = Field(default=None, description=SEED_HELP)


class Text2Image(EFETool):
    title: ClassVar[str] = "Generate Image From User Input Text"
    plans: ClassVar = (("text2image",),)
    args_schema: type[BaseModel] = PromptInput

    def _execute(self, text: str, seed: int | None = None) -> tuple[str, dict]:
        out = self.backend("text2image").text2image(text, seed)
        rel, artifact = self.save_generated(out, None, seed)
        return rel, {**artifact, "prompt": text}


class ControlNetTool(EFETool):
    """Condition image + description -> new image; ``condition`` names the ControlNet."""

    condition: ClassVar[str] = ""
    plans: ClassVar = (("controlnet",),)
    args_schema: type[BaseModel] = ConditionInput

    @classmethod
    def unusable_reason(cls, capability, backend) -> str:
        # One ControlNet backend serves all eight conditions; this tool needs its own weights.
        present = getattr(backend, "conditions_present", None)
        if capability == "controlnet" and callable(present) and cls.condition not in present():
            return f"the {cls.condition} ControlNet weights are not here"
        return ""

    def _execute(self, image_path: str, text: str, seed: int | None = None) -> tuple[str, dict]:
        cond = self.open(image_path)
        out = self.backend("controlnet").controlnet(self.condition, cond, text, seed)
        rel, artifact = self.save_generated(out, image_path, seed)
        return rel, {**artifact, "prompt": text, "condition": self.condition}


class CannyText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Canny Image"
    condition: ClassVar[str] = "canny"
    output_tag: ClassVar[str] = "canny2image"


class LineText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Line Image"
    condition: ClassVar[str] = "mlsd"
    output_tag: ClassVar[str] = "line2image"


class HedText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Soft Hed Boundary Image"
    condition: ClassVar[str] = "hed"
    output_tag: ClassVar[str] = "hed2image"


class ScribbleText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Sketch Image"
    condition: ClassVar[str] = "scribble"
    output_tag: ClassVar[str] = "scribble2image"


class PoseText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Pose Image"
    condition: ClassVar[str] = "openpose"
    output_tag: ClassVar[str] = "pose2image"


class SegText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Segmentations"
    condition: ClassVar[str] = "seg"
    output_tag: ClassVar[str] = "segment2image"


class DepthText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Depth"
    condition: ClassVar[str] = "depth"
    output_tag: ClassVar[str] = "depth2image"


class NormalText2Image(ControlNetTool):
    title: ClassVar[str] = "Generate Image Condition On Normal Map"
    condition: ClassVar[str] = "normal"
    output_tag: ClassVar[str] = "normal2image"
