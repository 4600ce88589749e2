"""A text-to-box finder built from the embedded detectors. It knows three things only: faces,
people and text, and says so for anything else instead of guessing.
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
    """Faces (BlazeFace), people (BlazePose per-person masks) and text lines (RapidOCR)."""

    name = "embedded-faces-people-text"
    kind = "embedded"
    label = (
        "Box finder from the embedded detectors that ONLY knows faces, people and text "
        "(MediaPipe BlazeFace and BlazePose, RapidOCR); it cannot find any other object"
    )
    capabilities = ("detect",)

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

    def detect(self, image, text: str) -> list[dict]:
        """Boxes ``[x0, y0, x1, y1]`` with ``score`` and ``label`` (face, person or text) for what
        ``text`` asks for. A quoted word (``the word "EXIT"``) keeps only text lines containing it.

        Raises UnsupportedQuery when ``text`` names none of faces, people or text, and
        BackendUnavailable when the part it needs cannot run here.
        """
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
