"""Classical (non-learned) backends: OpenCV and scikit-image methods that run anywhere, no weights.

Each says what it is in its ``label``: a line-segment detector is not MLSD, Telea inpainting fills
a hole from its surroundings and cannot draw a new object, a Haar cascade only finds frontal faces.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from PIL import Image

from efe_langchain.backends.base import Backend

__all__ = [
    "CannyEdges",
    "LineSegments",
    "HaarFaces",
    "TeleaInpaint",
    "GrabCutSegmenter",
    "FelzenszwalbSegmenter",
    "ImageQuality",
    "AutoEnhance",
]


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _grey(image: Image.Image) -> np.ndarray:
    import cv2

    return cv2.cvtColor(_rgb_array(image), cv2.COLOR_RGB2GRAY)


class _OpenCV(Backend):
    kind: ClassVar[str] = "classical"
    requires: ClassVar[tuple[str, ...]] = ("cv2",)
    install_hint: ClassVar[str] = "pip install 'opencv-python-headless>=4.9,<5'"


class CannyEdges(_OpenCV):
    name = "opencv-canny"
    label = "OpenCV Canny edge detector, thresholds 100/200 (the GPT4Tools method)"
    capabilities = ("edges",)

    def edges(self, image: Image.Image) -> Image.Image:
        import cv2

        low = int(self.options.get("low", 100))
        high = int(self.options.get("high", 200))
        # As GPT4Tools: Canny on the RGB array itself (OpenCV keeps the strongest channel's
        # gradient), so colour boundaries of equal brightness still give edges.
        edges = cv2.Canny(_rgb_array(image), low, high)
        return Image.fromarray(np.stack([edges] * 3, axis=-1))


class LineSegments(_OpenCV):
    name = "opencv-lsd"
    label = (
        "OpenCV LSD straight line segment detector (classical; not the MLSD network GPT4Tools used, "
        "so it also keeps short segments of texture)"
    )
    capabilities = ("lines",)

    def lines(self, image: Image.Image) -> Image.Image:
        segments = self.segments(image)
        import cv2

        w, h = image.size
        canvas = np.zeros((h, w), dtype=np.uint8)
        for x0, y0, x1, y1 in segments:
            cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 255, 1, cv2.LINE_AA)
        return Image.fromarray(np.stack([canvas] * 3, axis=-1))

    def segments(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """Straight segments ``(x0, y0, x1, y1)`` at least ``min_length`` (default 3% of the diagonal) long."""
        import cv2

        grey = _grey(image)
        lsd = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
        found = lsd.detect(grey)[0]
        if found is None:
            return []
        w, h = image.size
        min_len = float(self.options.get("min_length", 0.03 * math.hypot(w, h)))
        out = []
        for x0, y0, x1, y1 in found.reshape(-1, 4).tolist():
            if math.hypot(x1 - x0, y1 - y0) >= min_len:
                out.append((x0, y0, x1, y1))
        return out


class HaarFaces(_OpenCV):
    name = "opencv-haar-faces"
    label = (
        "OpenCV Haar cascade face detector (classical; frontal, upright faces only; the score is the "
        "cascade's last-stage weight squashed to 0-1, not a probability)"
    )
    capabilities = ("faces",)

    def _load(self) -> None:
        import cv2

        import threading

        self._run_lock = threading.Lock()
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():  # pragma: no cover - only with a broken OpenCV install
            raise RuntimeError(f"OpenCV could not read its face cascade at {path}")

    def faces(self, image: Image.Image) -> list[dict]:
        import cv2

        self.load()
        grey = cv2.equalizeHist(_grey(image))
        w, h = image.size
        min_side = max(20, int(min(w, h) * float(self.options.get("min_size", 0.05))))
        # One CascadeClassifier is shared by every tool; OpenCV does not promise it is reentrant.
        with self._run_lock:
            rects, _levels, weights = self._cascade.detectMultiScale3(
                grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
            )
        out = []
        for (x, y, bw, bh), weight in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            score = 1.0 / (1.0 + math.exp(-float(weight)))
            out.append({"box": [int(x), int(y), int(x + bw), int(y + bh)], "score": round(score, 4), "label": "face"})
        return sorted(out, key=lambda d: -d["score"])


class TeleaInpaint(_OpenCV):
    name = "opencv-telea-inpaint"
    label = (
        "OpenCV Telea inpainting (classical): fills the masked region from its surroundings; it cannot "
        "draw a new object from a prompt, so it removes but never replaces"
    )
    capabilities = ("inpaint",)
    # Tools that need a prompt-following inpainter (replace) must not pick this one.
    follows_prompt: ClassVar[bool] = False

    def inpaint(self, image: Image.Image, mask: np.ndarray, prompt: str = "", seed: int | None = None) -> Image.Image:
        import cv2

        arr = _rgb_array(image)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != arr.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match the image {arr.shape[:2]}")
        m = mask.astype(np.uint8) * 255
        # Grow the mask a little: object borders carry the object's colour into the fill otherwise.
        grow = max(3, int(0.01 * max(arr.shape[:2])))
        m = cv2.dilate(m, np.ones((grow, grow), np.uint8))
        radius = int(self.options.get("radius", 5))
        out = cv2.inpaint(arr, m, radius, cv2.INPAINT_TELEA)
        return Image.fromarray(out)


class GrabCutSegmenter(_OpenCV):
    name = "opencv-grabcut"
    label = (
        "OpenCV grabCut colour-model segmentation (classical): cuts the object out of a given box; "
        "without a box it assumes the subject is centred, away from the borders"
    )
    capabilities = ("segment_box", "foreground_mask")

    def _grabcut(self, arr: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        import cv2

        mask = np.zeros(arr.shape[:2], np.uint8)
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        iters = int(self.options.get("iterations", 5))
        cv2.grabCut(cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), mask, rect, bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    def segment_box(self, image: Image.Image, box) -> np.ndarray:
        arr = _rgb_array(image)
        h, w = arr.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = sorted((max(0, min(w - 1, x0)), max(0, min(w, x1))))
        y0, y1 = sorted((max(0, min(h - 1, y0)), max(0, min(h, y1))))
        rw, rh = int(round(x1 - x0)), int(round(y1 - y0))
        if rw < 2 or rh < 2:
            return np.zeros((h, w), bool)
        if rw >= w - 1 and rh >= h - 1:
            # grabCut needs some background outside the rectangle to learn its colours.
            return self.foreground_mask(image)
        mask = self._grabcut(arr, (int(x0), int(y0), rw, rh))
        if not mask.any():
            # Nothing separable by colour: the box itself is the honest answer.
            mask[int(y0) : int(y0) + rh, int(x0) : int(x0) + rw] = True
        return mask

    def foreground_mask(self, image: Image.Image) -> np.ndarray:
        arr = _rgb_array(image)
        h, w = arr.shape[:2]
        margin = float(self.options.get("margin", 0.05))
        mx, my = max(1, int(w * margin)), max(1, int(h * margin))
        return self._grabcut(arr, (mx, my, w - 2 * mx, h - 2 * my))


class FelzenszwalbSegmenter(Backend):
    name = "skimage-felzenszwalb"
    kind = "classical"
    label = (
        "scikit-image Felzenszwalb graph segmentation (classical): regions of similar colour, "
        "not objects; SAM gives object masks"
    )
    capabilities = ("segment_all",)
    requires = ("skimage",)
    install_hint = "pip install scikit-image"

    def segment_all(self, image: Image.Image) -> np.ndarray:
        from skimage.segmentation import felzenszwalb

        arr = _rgb_array(image)
        scale = float(self.options.get("scale", 300))
        min_size = int(self.options.get("min_size", max(50, arr.shape[0] * arr.shape[1] // 500)))
        labels = felzenszwalb(arr, scale=scale, sigma=0.8, min_size=min_size)
        return (labels + 1).astype(np.int32)  # every pixel belongs to some region: none is background


class ImageQuality(_OpenCV):
    name = "opencv-quality"
    label = (
        "classical no-reference image measures (OpenCV/NumPy): sharpness (variance of the Laplacian), "
        "exposure, RMS contrast, noise (Immerkaer) and colourfulness (Hasler-Suesstrunk)"
    )
    capabilities = ("quality",)

    def quality(self, image: Image.Image) -> dict:
        import cv2

        arr = _rgb_array(image).astype(np.float64)
        grey = _grey(image).astype(np.float64)
        h, w = grey.shape
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        mean = float(grey.mean())
        dark = float((grey <= 5).mean())
        bright = float((grey >= 250).mean())
        contrast = float(grey.std() / 255.0)
        # Immerkaer (1996): a Laplacian-difference kernel cancels image structure, leaving noise.
        kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
        conv = cv2.filter2D(grey, cv2.CV_64F, kernel)[1:-1, 1:-1]
        noise = float(math.sqrt(math.pi / 2) * np.abs(conv).sum() / (6 * max(1, (w - 2) * (h - 2))))
        r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
        rg, yb = r - g, 0.5 * (r + g) - b
        colourfulness = float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))
        return {
            "sharpness": round(sharpness, 2),
            "brightness": round(mean / 255.0, 4),
            "underexposed_fraction": round(dark, 4),
            "overexposed_fraction": round(bright, 4),
            "contrast": round(contrast, 4),
            "noise_sigma": round(noise, 3),
            "colourfulness": round(colourfulness, 2),
            "verdict": _verdict(sharpness, mean / 255.0, dark, bright, contrast, noise),
        }


def _verdict(sharpness: float, brightness: float, dark: float, bright: float, contrast: float, noise: float) -> str:
    """Plain words for the measures; thresholds are rules of thumb for 512-pixel photos."""
    issues = []
    if sharpness < 100:
        issues.append("blurry")
    if brightness < 0.25 or dark > 0.25:
        issues.append("underexposed")
    if brightness > 0.8 or bright > 0.25:
        issues.append("overexposed")
    if contrast < 0.12:
        issues.append("low contrast")
    if noise > 8:
        issues.append("noisy")
    return "no obvious problems" if not issues else ", ".join(issues)


class AutoEnhance(_OpenCV):
    name = "opencv-auto-enhance"
    label = (
        "classical automatic enhancement (OpenCV): grey-world white balance, then CLAHE local "
        "contrast on the lightness channel; it corrects, it does not add detail"
    )
    capabilities = ("enhance",)

    def enhance(self, image: Image.Image) -> Image.Image:
        import cv2

        arr = _rgb_array(image).astype(np.float32)
        # Grey world: the average colour of a scene is grey, so a colour cast shows in the means.
        means = arr.reshape(-1, 3).mean(axis=0)
        gains = means.mean() / np.maximum(means, 1.0)
        strength = float(self.options.get("white_balance", 1.0))
        arr = np.clip(arr * (1 + strength * (gains - 1)), 0, 255).astype(np.uint8)
        lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB)
        clahe = cv2.createCLAHE(clipLimit=float(self.options.get("clip_limit", 2.0)), tileGridSize=(8, 8))
        lab[..., 0] = clahe.apply(lab[..., 0])
        return Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
