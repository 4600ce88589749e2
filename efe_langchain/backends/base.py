"""What every model behind a tool is: a backend with an honest label, availability and lazy loading.

A backend implements one or more *capabilities* (plain methods with fixed signatures, listed in
``CAPABILITIES``). Tools call capabilities; they never import a model library themselves. Heavy
imports happen in ``load()`` only, so listing tools or building the registry stays cheap.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import ClassVar

__all__ = ["Backend", "BackendUnavailable", "CAPABILITIES", "KINDS"]

# kind -> what it means for a user reading `efe tools`
KINDS = {
    "embedded": "weights shipped inside a registry package; runs out of the box",
    "classical": "a classical (non-learned) method; runs out of the box",
    "reference": "the GPT4Tools reference checkpoint through transformers/diffusers; needs its weights",
}

# capability -> signature the backend method must have (images are RGB PIL.Image.Image)
CAPABILITIES = {
    "caption": "caption(image) -> str",
    "vqa": "vqa(image, question: str) -> str",
    "detect": "detect(image, text: str) -> list[dict(box=[x0,y0,x1,y1], score=float, label=str)]",
    "segment_all": "segment_all(image) -> np.ndarray int32 label map HxW (0 = background)",
    "segment_object": "segment_object(image, text: str) -> np.ndarray bool HxW",
    "edges": "edges(image) -> PIL.Image",
    "lines": "lines(image) -> PIL.Image",
    "hed": "hed(image) -> PIL.Image",
    "scribble": "scribble(image) -> PIL.Image",
    "pose": "pose(image) -> PIL.Image (skeleton on black, OpenPose colours)",
    "depth": "depth(image) -> PIL.Image (grey, near = bright)",
    "normal": "normal(image) -> PIL.Image (RGB normal map)",
    "text2image": "text2image(prompt: str, seed: int | None) -> PIL.Image",
    "instruct": "instruct(image, instruction: str, seed: int | None) -> PIL.Image",
    "inpaint": "inpaint(image, mask: np.ndarray bool, prompt: str, seed: int | None) -> PIL.Image",
    "controlnet": "controlnet(condition: str, cond_image, prompt: str, seed: int | None) -> PIL.Image",
    "ocr": "ocr(image) -> list[dict(text=str, box=[x0,y0,x1,y1], score=float)]",
    "faces": "faces(image) -> list[dict(box=[x0,y0,x1,y1], score=float)]",
    "person_mask": "person_mask(image) -> np.ndarray bool HxW",
    "quality": "quality(image) -> dict of named scores",
    # Added by the tool layer: box-prompted masks (SAM, grabCut) let "segment the given object"
    # compose any detector with any box segmenter; foreground masks back background removal.
    "segment_box": "segment_box(image, box=[x0,y0,x1,y1]) -> np.ndarray bool HxW",
    "foreground_mask": "foreground_mask(image) -> np.ndarray bool HxW (the main subject)",
    "enhance": "enhance(image) -> PIL.Image (contrast and colour balance corrected)",
}


class BackendUnavailable(RuntimeError):
    """A backend cannot run here; the message says which weights or packages and how to get them."""


class Backend:
    """Base class. Subclasses set the class attributes and implement ``_load`` and capabilities."""

    name: ClassVar[str] = ""  # short id, e.g. "mediapipe-pose"
    kind: ClassVar[str] = "embedded"  # a key of KINDS
    label: ClassVar[str] = ""  # honest, user-facing: what it is and what it only knows
    capabilities: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()  # importable module names
    install_hint: ClassVar[str] = ""  # how to get what is missing

    def __init__(self, device: str = "cpu", **options) -> None:
        self.device = device
        self.options = options
        self._loaded = False
        self._lock = threading.Lock()

    # -- availability -------------------------------------------------------------------------
    def missing(self) -> list[str]:
        """What is missing for this backend to run (modules, weight files); empty when it can."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def availability(self) -> tuple[bool, str]:
        missing = self.missing()
        if missing:
            return False, f"missing {', '.join(missing)}. {self.install_hint}".strip()
        return True, self.label

    # -- loading ------------------------------------------------------------------------------
    def load(self) -> "Backend":
        """Load weights once (thread-safe); raises BackendUnavailable with a clear message."""
        if self._loaded:
            return self
        with self._lock:
            if not self._loaded:
                ok, why = self.availability()
                if not ok:
                    raise BackendUnavailable(f"{self.name}: {why}")
                self._load()
                self._loaded = True
        return self

    def _load(self) -> None:  # pragma: no cover - trivial default
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.kind}) on {self.device}>"
