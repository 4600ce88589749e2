"""Image -> condition map tools (edges, lines, HED, scribble, pose, depth, normals): GPT4Tools'
annotators, whose outputs feed the ControlNet generation tools."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from efe_langchain.tools.base import EFETool, ImageInput

__all__ = [
    "AnnotatorTool",
    "Image2Canny",
    "Image2Line",
    "Image2Hed",
    "Image2Scribble",
    "Image2Pose",
    "Image2Depth",
    "Image2Normal",
]


class AnnotatorTool(EFETool):
    """One capability, image in, condition image out, saved under GPT4Tools' tag."""

    capability: ClassVar[str] = ""
    args_schema: type[BaseModel] = ImageInput
    empty_means: ClassVar[str] = "nothing was found"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # One capability, one plan: an annotator runs on whichever backend serves it.
        if cls.capability and "plans" not in vars(cls):
            cls.plans = ((cls.capability,),)

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        out = getattr(self.backend(self.capability), self.capability)(image)
        if out.size != image.size:
            # Annotators may work at their own resolution; outputs line up with the input.
            out = out.resize(image.size)
        rel, artifact = self.save(out, image_path)
        if out.convert("L").getbbox() is None:
            # An all-black map is a real result (no person, a flat picture), but the model should
            # not describe edges or a skeleton that are not there.
            return f"{rel} (the map is empty: {self.empty_means})", {**artifact, "empty": True}
        return rel, {**artifact, "empty": False}


class Image2Canny(AnnotatorTool):
    title: ClassVar[str] = "Edge Detection On Image"
    capability: ClassVar[str] = "edges"
    empty_means: ClassVar[str] = "no edges were found"
    output_tag: ClassVar[str] = "edge"


class Image2Line(AnnotatorTool):
    title: ClassVar[str] = "Line Detection On Image"
    capability: ClassVar[str] = "lines"
    empty_means: ClassVar[str] = "no straight lines were found"
    output_tag: ClassVar[str] = "line-of"


class Image2Hed(AnnotatorTool):
    title: ClassVar[str] = "Hed Detection On Image"
    capability: ClassVar[str] = "hed"
    output_tag: ClassVar[str] = "hed-boundary"


class Image2Scribble(AnnotatorTool):
    title: ClassVar[str] = "Sketch Detection On Image"
    capability: ClassVar[str] = "scribble"
    output_tag: ClassVar[str] = "scribble"


class Image2Pose(AnnotatorTool):
    title: ClassVar[str] = "Pose Detection On Image"
    capability: ClassVar[str] = "pose"
    empty_means: ClassVar[str] = "no person was found"
    output_tag: ClassVar[str] = "human-pose"


class Image2Depth(AnnotatorTool):
    title: ClassVar[str] = "Predict Depth On Image"
    capability: ClassVar[str] = "depth"
    output_tag: ClassVar[str] = "depth"


class Image2Normal(AnnotatorTool):
    title: ClassVar[str] = "Predict Normal Map On Image"
    capability: ClassVar[str] = "normal"
    output_tag: ClassVar[str] = "normal-map"
