"""A text-to-box (and text-to-mask) finder built from the embedded detectors. It knows three
things only: faces, people and text, and says so for anything else instead of guessing.
"""

from __future__ import annotations

import re

from efe_langchain.backends.base import Backend
from efe_langchain.backends.embedded._shared import shared_backend
from efe_langchain.backends.embedded.mediapipe_models import MediaPipeFaces, MediaPipePose
from efe_langchain.backends.embedded.ocr import RapidOCRBackend

__all__ = ["EmbeddedDetector", "UnsupportedQuery", "KNOWN_CATEGORIES", "categories_in"]

# category -> words of a query that ask for it
_WORDS = {
    "face": ("face", "faces"),
    "person": (
        "person", "persons", "people", "human", "humans", "man", "men", "woman", "women", "boy",
        "boys", "girl", "girls", "child", "children", "kid", "kids", "baby", "lady", "ladies",
        "guy", "guys", "someone", "somebody", "pedestrian", "pedestrians", "astronaut",
        "astronauts", "player", "players",
    ),
    "text": (
        "text", "texts", "word", "words", "letter", "letters", "writing", "caption", "captions",
        "title", "titles", "number", "numbers", "digits", "inscription", "label", "labels",
    ),
}  # fmt: skip
KNOWN_CATEGORIES = tuple(_WORDS)
# "EXIT", “EXIT” or 'EXIT' (an apostrophe inside a word, as in "man's", opens nothing)
_QUOTED = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?<!\w)['‘]([^'‘’]+)['’](?!\w)")


class UnsupportedQuery(ValueError):
    """The query names nothing this detector knows; the message says what it can find."""


def categories_in(text: str) -> list[str]:
    """The known categories a query asks for, in KNOWN_CATEGORIES order (empty if none)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return [cat for cat in KNOWN_CATEGORIES if words & set(_WORDS[cat])]


class EmbeddedDetector(Backend):
    """Faces (BlazeFace), people (BlazePose per-person masks) and text lines (RapidOCR).

    ``segment_object`` gives people their BlazePose masks (a box segmenter would cut a person
    worse), faces the person mask inside the face box (an ellipse where no body was found) and
    text lines their boxes.
    """

    name = "embedded-faces-people-text"
    kind = "embedded"
    label = (
        "Box and mask finder from the embedded detectors that ONLY knows faces, people and text "
        "(MediaPipe BlazeFace and BlazePose, RapidOCR); it cannot find any other object"
    )
    capabilities = ("detect", "segment_object")

    def __init__(self, device: str = "cpu", faces=None, pose=None, ocr=None, **options) -> None:
        super().__init__(device, **options)
        # Component models are shared with the tools that use them directly: loaded once.
        self.faces_backend = faces or shared_backend(MediaPipeFaces, device)
        self.pose_backend = pose or shared_backend(MediaPipePose, device)
        self.ocr_backend = ocr or shared_backend(RapidOCRBackend, device)

    def _parts(self):
        return {"face": self.faces_backend, "person": self.pose_backend, "text": self.ocr_backend}

    def missing(self) -> list[str]:
        # Usable as soon as one part can run; parts that cannot are reported by detect().
        parts = [b.missing() for b in self._parts().values()]
        if all(parts):
            return [m for p in parts for m in p]
        return []

    def knows(self, text: str) -> bool:
        return bool(categories_in(text))

    @staticmethod
    def _query(text: str) -> tuple[list[str], list[str]]:
        """(categories asked for, quoted strings) or UnsupportedQuery."""
        if not isinstance(text, str) or not text.strip():
            raise UnsupportedQuery("say what to find: faces, people or text")
        wanted = categories_in(text)
        quoted = [q.strip().lower() for pair in _QUOTED.findall(text) for q in pair if q.strip()]
        if quoted and "text" not in wanted:
            wanted.append("text")
        if not wanted:
            raise UnsupportedQuery(
                f"this embedded detector only finds faces, people and text; it cannot look for "
                f"{text.strip()!r}. Finding other objects needs a reference detector such as "
                "GroundingDINO (see `efe tools` for how to install its weights)."
            )
        return wanted, quoted

    def detect(self, image, text: str) -> list[dict]:
        """Boxes ``[x0, y0, x1, y1]`` with ``score`` and ``label`` (face, person or text) for what
        ``text`` asks for. A quoted word (``the word "EXIT"``) keeps only text lines containing it.

        Raises UnsupportedQuery when ``text`` names none of faces, people or text, and
        BackendUnavailable when the part it needs cannot run here.
        """
        wanted, quoted = self._query(text)
        found: list[dict] = []
        if "face" in wanted:
            found += [dict(d, label="face") for d in self.faces_backend.faces(image)]
        if "person" in wanted:
            found += [
                {"box": p["box"], "score": p["score"], "label": "person"}
                for p in self.pose_backend.people(image)
                if p["box"] is not None
            ]
        if "text" in wanted:
            for line in self.ocr_backend.ocr(image):
                if quoted and not any(q in line["text"].lower() for q in quoted):
                    continue
                found.append({"box": line["box"], "score": line["score"], "label": "text", "text": line["text"]})
        return found

    def segment_object(self, image, text: str):
        """bool HxW mask of what ``text`` asks for (faces, people or text); all False if none.

        Raises UnsupportedQuery like ``detect``.
        """
        import cv2
        import numpy as np

        wanted, quoted = self._query(text)
        width, height = image.size
        mask = np.zeros((height, width), dtype=bool)
        people = self.pose_backend.people(image) if {"person", "face"} & set(wanted) else []
        bodies = np.zeros_like(mask)
        for person in people:
            bodies |= person["mask"]
        if "person" in wanted:
            mask |= bodies
        if "face" in wanted:
            for face in self.faces_backend.faces(image):
                x0, y0, x1, y1 = face["box"]
                inside = bodies[y0:y1, x0:x1]
                if inside.size and inside.mean() > 0.3:
                    mask[y0:y1, x0:x1] |= inside
                else:
                    oval = np.zeros((height, width), dtype=np.uint8)
                    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
                    cv2.ellipse(oval, centre, (max(1, (x1 - x0) // 2), max(1, (y1 - y0) // 2)), 0, 0, 360, 1, -1)
                    mask |= oval.astype(bool)
        if "text" in wanted:
            for line in self.ocr_backend.ocr(image):
                if quoted and not any(q in line["text"].lower() for q in quoted):
                    continue
                x0, y0, x1, y1 = line["box"]
                mask[y0:y1, x0:x1] = True
        return mask
