"""DPT depth (GPT4Tools Image2Depth) and the normal map GPT4Tools derives from DPT depth with Sobel."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image

from efe_langchain.backends.reference.base import ReferenceBackend
from efe_langchain.backends.reference.shared import shared_processor_and_model

__all__ = ["DptDepthBackend", "DptNormalBackend", "load_dpt", "normal_from_depth", "sobel"]

# GPT4Tools Image2Normal: pixels whose normalised depth is below this are background (flat normal).
BACKGROUND_THRESHOLD = 0.4


def load_dpt(location: str, device: str, dtype: str):
    """``(image processor, model)`` for a DPT folder, cached process-wide."""
    return shared_processor_and_model("dpt", "AutoImageProcessor", "DPTForDepthEstimation", location, device, dtype)


def sobel(image: np.ndarray, axis: int) -> np.ndarray:
    """3x3 Sobel derivative along ``axis`` (1 = x, 0 = y), borders reflected without repeating
    the edge pixel: the same numbers as ``cv2.Sobel(img, CV_32F, dx, dy, ksize=3)``."""
    p = np.pad(np.asarray(image, dtype=np.float32), 1, mode="reflect")
    if axis == 1:
        diff = p[:, 2:] - p[:, :-2]
        return diff[:-2] + 2 * diff[1:-1] + diff[2:]
    diff = p[2:] - p[:-2]
    return diff[:, :-2] + 2 * diff[:, 1:-1] + diff[:, 2:]


def normal_from_depth(depth: np.ndarray, bg_threshold: float = BACKGROUND_THRESHOLD) -> np.ndarray:
    """GPT4Tools' normal map: Sobel gradients of the (inverse) depth, z = 2*pi, background flat.

    Returns HxWx3 uint8.
    """
    depth = np.asarray(depth, dtype=np.float32)
    span = float(depth.max() - depth.min())
    scaled = (depth - depth.min()) / span if span > 0 else np.zeros_like(depth)
    x = sobel(depth, axis=1)
    y = sobel(depth, axis=0)
    x[scaled < bg_threshold] = 0
    y[scaled < bg_threshold] = 0
    z = np.full_like(x, np.pi * 2.0)
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal**2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)


class _Dpt(ReferenceBackend):
    def _load(self) -> None:
        self.processor, self.model = load_dpt(self.require(), self.device, self.dtype_name)

    def predicted_depth(self, image) -> np.ndarray:
        """DPT's raw output (relative inverse depth, near = large) at the model's resolution."""
        import torch

        self.load()
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device, self.model.dtype)
        with torch.inference_mode():
            out = self.model(**inputs)
        return out.predicted_depth[0].float().cpu().numpy()


class DptDepthBackend(_Dpt):
    name: ClassVar[str] = "dpt-depth"
    describes: ClassVar[str] = "DPT monocular depth"
    capabilities: ClassVar[tuple[str, ...]] = ("depth",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "dpt-large"}

    def depth(self, image) -> Image.Image:
        """Grey depth at the image's size, near = bright, as 3 equal channels like GPT4Tools saves it."""
        import torch

        raw = torch.from_numpy(self.predicted_depth(image))[None, None]
        # What the depth-estimation pipeline GPT4Tools calls does: bicubic to the image size,
        # then scale by the maximum.
        depth = torch.nn.functional.interpolate(raw, size=(image.height, image.width), mode="bicubic", align_corners=False)
        depth = depth[0, 0].clamp(min=0).numpy()
        peak = float(depth.max())
        grey = (depth * 255.0 / peak).astype(np.uint8) if peak > 0 else np.zeros(depth.shape, np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))


class DptNormalBackend(_Dpt):
    name: ClassVar[str] = "dpt-normal"
    describes: ClassVar[str] = "normal map from DPT depth (Sobel)"
    capabilities: ClassVar[tuple[str, ...]] = ("normal",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "dpt-hybrid"}

    def normal(self, image) -> Image.Image:
        normal = normal_from_depth(self.predicted_depth(image), float(self.option("bg_threshold", BACKGROUND_THRESHOLD)))
        return Image.fromarray(normal).resize(image.size)
