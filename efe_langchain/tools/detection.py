"""Finding things: boxes for a named object, faces, and cropping a named object out."""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from pydantic import BaseModel, Field

from efe_langchain.tools.base import IMAGE_PATH_HELP, EFETool, ImageInput, ToolException
from efe_langchain.tools.drawing import draw_boxes

__all__ = [
    "Text2Box",
    "FaceFinding",
    "ObjectCropping",
    "ObjectInput",
    "find_boxes",
    "json_box",
    "json_score",
    "nothing_found",
    "query_not_found",
]


class ObjectInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    text: str = Field(description="the text description of the object to be found")


def json_box(box) -> list[float]:
    """Box coordinates as plain floats to 0.1 px (artifacts are JSON)."""
    return [round(float(v), 1) for v in box]


def json_score(item: dict) -> float:
    """A detection's score as a plain float to 4 places (1.0 when the backend gives none)."""
    return round(float(item.get("score", 1.0)), 4)


def find_boxes(tool: EFETool, image: Image.Image, text: str) -> list[dict]:
    """Boxes for ``text``, best first, clipped to the image, as plain JSON-able dicts."""
    text = text.strip()
    if not text:
        raise ToolException("say which object to look for")
    w, h = image.size
    found = []
    for item in tool.backend("detect").detect(image, text) or []:
        x0, y0, x1, y1 = (float(v) for v in item["box"])
        box = [max(0.0, min(x0, x1)), max(0.0, min(y0, y1)), min(float(w), max(x0, x1)), min(float(h), max(y0, y1))]
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        found.append({"box": json_box(box), "score": json_score(item), "label": str(item.get("label") or text)})
    return sorted(found, key=lambda d: -d["score"])


def nothing_found(tool: EFETool, capability: str, what: str, image_path: str) -> str:
    """An honest "no result" observation that names what the backend can and cannot see."""
    backend = tool.bind().get(capability)
    label = f" ({backend.label})" if backend is not None and backend.label else ""
    return f"No {what} found in {image_path}. Detector used: {backend.name if backend else '?'}{label}."


def query_not_found(tool: EFETool, capability: str, query: str, image_path: str, **extra) -> tuple[str, dict]:
    """The tool result when nothing matches ``query``: the observation and its artifact."""
    return nothing_found(tool, capability, repr(query), image_path), {"source": image_path, "query": query, **extra}


class Text2Box(EFETool):
    """GPT4Tools' GroundingDINO tool: boxes drawn on a copy of the image."""

    title: ClassVar[str] = "Detect the Give Object"
    plans: ClassVar = (("detect",),)
    args_schema: type[BaseModel] = ObjectInput
    output_tag: ClassVar[str] = "detect-something"

    def _execute(self, image_path: str, text: str) -> tuple[str, dict]:
        image = self.open(image_path)
        boxes = find_boxes(self, image, text)
        if not boxes:
            return query_not_found(self, "detect", text, image_path, boxes=[])
        rel, artifact = self.save(draw_boxes(image, boxes), image_path)
        return rel, {**artifact, "query": text, "boxes": boxes}


class FaceFinding(EFETool):
    title: ClassVar[str] = "Find Faces On Image"
    blurb: ClassVar[str] = (
        "useful when you want to find the faces of people in the image and where they are. like: find the "
        "faces in this image, or how many faces are in this photo, or locate the faces in this picture. "
        "The input to this tool should be a string, representing the image_path"
    )
    load_name: ClassVar[str] = "FaceFinding"
    plans: ClassVar = (("faces",),)
    args_schema: type[BaseModel] = ImageInput
    output_tag: ClassVar[str] = "faces"

    def _execute(self, image_path: str) -> tuple[str, dict]:
        image = self.open(image_path)
        faces = [
            {"box": json_box(f["box"]), "score": json_score(f), "label": "face"}
            for f in self.backend("faces").faces(image) or []
        ]
        if not faces:
            return nothing_found(self, "faces", "faces", image_path), {"source": image_path, "faces": []}
        rel, artifact = self.save(draw_boxes(image, faces, colour=(0, 200, 0)), image_path)
        where = "; ".join(f"[{', '.join(str(round(v)) for v in f['box'])}]" for f in faces)
        n = len(faces)
        return (
            f"{rel} ({n} face{'s' if n > 1 else ''} found, boxes x0,y0,x1,y1: {where})",
            {**artifact, "faces": faces},
        )


class ObjectCropping(EFETool):
    title: ClassVar[str] = "Crop Out The Named Object"
    blurb: ClassVar[str] = (
        "useful when you want to cut a given object out of the image into a new image. like: crop the dog "
        "from this image, or crop out the face, or cut the person out as a new picture. The input to this "
        "tool should be a comma separated string of two, representing the image_path and the text "
        "description of the object to be cropped"
    )
    load_name: ClassVar[str] = "ObjectCropping"
    plans: ClassVar = (("detect",),)
    args_schema: type[BaseModel] = ObjectInput
    output_tag: ClassVar[str] = "crop"

    def _execute(self, image_path: str, text: str) -> tuple[str, dict]:
        image = self.open(image_path)
        boxes = find_boxes(self, image, text)
        if not boxes:
            return query_not_found(self, "detect", text, image_path, boxes=[])
        best = boxes[0]
        x0, y0, x1, y1 = best["box"]
        # A little context around the box, as a person cropping by hand would leave.
        mx, my = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
        w, h = image.size
        crop_box = [int(max(0, x0 - mx)), int(max(0, y0 - my)), int(min(w, x1 + mx + 0.5)), int(min(h, y1 + my + 0.5))]
        rel, artifact = self.save(image.crop(crop_box), image_path)
        return rel, {**artifact, "query": text, "crop_box": crop_box, "boxes": boxes}
