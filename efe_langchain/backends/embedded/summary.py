"""An honest image description for when no captioning weights are installed.

GPT4Tools describes every upload with BLIP. Without BLIP we can still tell the agent facts that
the embedded detectors measure: size, people and faces, text read, dominant colours and
brightness. The sentence starts by saying it is such a summary, so neither the model nor the
user mistakes it for a caption: it cannot name objects, scenes or actions.
"""

from __future__ import annotations

import numpy as np

from efe_langchain.backends.base import Backend, BackendUnavailable
from efe_langchain.backends.embedded._shared import shared_backend
from efe_langchain.backends.embedded.mediapipe_models import MediaPipeFaces, MediaPipePose
from efe_langchain.backends.embedded.ocr import RapidOCRBackend

__all__ = ["EmbeddedSummary", "SUMMARY_PREFIX", "dominant_colours", "brightness_word", "colour_names"]

SUMMARY_PREFIX = "Automatic summary from embedded detectors, not a caption"
_MAX_TEXT_CHARS = 120


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """A basic colour name for every pixel of an (..., 3) uint8 array (HSV rules, 12 names)."""
    import cv2

    flat = np.ascontiguousarray(rgb.reshape(-1, 1, 3).astype(np.uint8))
    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float32)
    hue, sat, val = hsv[:, 0] * (360.0 / 256.0), hsv[:, 1] / 255.0, hsv[:, 2] / 255.0
    names = np.empty(len(hsv), dtype=object)
    chroma = sat * val
    grey = chroma < 0.12
    names[grey & (val < 0.25)] = "black"
    names[grey & (val >= 0.25) & (val < 0.8)] = "grey"
    names[grey & (val >= 0.8)] = "white"
    names[~grey & (val < 0.2)] = "black"
    colour = ~grey & (val >= 0.2)
    # hue ranges in degrees; "brown" is a dark orange/yellow
    bands = (
        (0, 10, "red"), (10, 45, "orange"), (45, 70, "yellow"), (70, 165, "green"),
        (165, 195, "cyan"), (195, 260, "blue"), (260, 290, "purple"), (290, 345, "pink"),
        (345, 361, "red"),
    )  # fmt: skip
    for lo, hi, name in bands:
        names[colour & (hue >= lo) & (hue < hi)] = name
    brown = colour & (hue >= 10) & (hue < 50) & (val < 0.6)
    names[brown] = "brown"
    return names.reshape(rgb.shape[:-1])


def dominant_colours(image, top: int = 3, min_share: float = 0.08) -> list[tuple[str, float]]:
    """The most common colour names with their share of the image, largest first."""
    small = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.uint8)
    names, counts = np.unique(colour_names(small), return_counts=True)
    share = counts / counts.sum()
    order = np.argsort(-share)
    return [(str(names[i]), float(share[i])) for i in order[:top] if share[i] >= min_share]


def brightness_word(image) -> tuple[str, float]:
    """("dark" | "dim" | "medium" | "bright", mean luma in [0, 1])."""
    luma = float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255.0)
    for limit, word in ((0.25, "dark"), (0.4, "dim"), (0.65, "medium")):
        if luma < limit:
            return word, luma
    return "bright", luma


def _where(box, width: int) -> str:
    centre = (box[0] + box[2]) / 2 / width
    return "on the left" if centre < 0.38 else "on the right" if centre > 0.62 else "in the centre"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {'people' if word == 'person' else word + 's'}"


class EmbeddedSummary(Backend):
    """``caption`` that composes measured facts into one honest sentence."""

    name = "embedded-summary"
    kind = "embedded"
    label = (
        "Automatic summary from the embedded detectors (size, people and faces from MediaPipe, "
        "text from RapidOCR, dominant colours, brightness): not a caption, it cannot name "
        "objects or scenes"
    )
    capabilities = ("caption",)
    requires = ("cv2",)
    install_hint = "pip install opencv-python-headless"

    def __init__(self, device: str = "cpu", pose=None, faces=None, ocr=None, **options) -> None:
        super().__init__(device, **options)
        # Component models are shared with the tools that use them directly: loaded once.
        self.pose_backend = pose or shared_backend(MediaPipePose, device)
        self.faces_backend = faces or shared_backend(MediaPipeFaces, device)
        self.ocr_backend = ocr or shared_backend(RapidOCRBackend, device)

    def facts(self, image) -> dict:
        """The measurements behind the sentence (JSON-serializable); a part that cannot run here
        is listed under ``unavailable`` instead."""
        width, height = image.size
        names = colour_names(np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.uint8))
        # A few coloured pixels (blue text on white) make it a colour image.
        colourful = float(np.isin(names, ("black", "grey", "white"), invert=True).mean()) >= 0.01
        word, luma = brightness_word(image)
        facts: dict = {
            "width": width,
            "height": height,
            "colour": colourful,
            "brightness": word,
            "mean_luma": round(luma, 3),
            "dominant_colours": [[n, round(s, 3)] for n, s in dominant_colours(image)],
            "unavailable": [],
        }

        def boxes(found):
            return [{"box": d["box"], "score": round(d["score"], 3)} for d in found]

        for key, run in (
            ("people", lambda: boxes(self.pose_backend.people(image))),
            ("faces", lambda: boxes(self.faces_backend.faces(image))),
            ("text", lambda: [line["text"] for line in self.ocr_backend.ocr(image)]),
        ):
            try:
                facts[key] = run()
            except BackendUnavailable as exc:
                facts[key] = None
                facts["unavailable"].append(f"{key}: {exc}")
        return facts

    def caption(self, image) -> str:
        """One sentence, e.g. 'Automatic summary from embedded detectors, not a caption: a
        512x512 colour image, medium brightness, mostly orange, white and grey; 1 person (in the
        centre); 1 face; no text read.'"""
        return self.describe(self.facts(image))

    @staticmethod
    def describe(facts: dict) -> str:
        parts = []
        kind = "colour image" if facts["colour"] else "black-and-white image"
        scene = f"a {facts['width']}x{facts['height']} {kind}"
        scene += ", medium brightness" if facts["brightness"] == "medium" else f", {facts['brightness']}"
        names = [n for n, _ in facts["dominant_colours"]]
        if facts["colour"] and names:
            scene += ", mostly " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
        parts.append(scene)
        people, faces, text = facts.get("people"), facts.get("faces"), facts.get("text")
        if people is not None:
            if people:
                boxes = sorted((p["box"] for p in people if p["box"]), key=lambda b: b[0] + b[2])
                where = ", ".join(_where(b, facts["width"]) for b in boxes) if len(people) <= 3 else ""
                parts.append(_plural(len(people), "person") + (f" ({where})" if where else ""))
            else:
                parts.append("no person found")
        if faces is not None:
            parts.append(_plural(len(faces), "face") if faces else "no face found")
        if text is not None:
            if text:
                read = "; ".join(text)
                if len(read) > _MAX_TEXT_CHARS:
                    read = read[: _MAX_TEXT_CHARS - 3].rstrip() + "..."
                parts.append(f'text read: "{read}"')
            else:
                parts.append("no text read")
        body = "; ".join(parts)
        return f"{SUMMARY_PREFIX}: {body}."
