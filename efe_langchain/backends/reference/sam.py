"""SAM through transformers: box-prompted masks, segment-everything from a point grid, and
GroundingDINO boxes -> SAM masks (GPT4Tools Segmenting and ObjectSegmenting).

Segment-everything follows SAM's automatic mask generator: prompt the mask decoder with one point
per grid cell, keep masks whose predicted IoU and stability are high, drop near-duplicates by box
IoU, then paint the survivors largest first so small parts stay visible on top.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from efe_langchain.backends.reference.base import ReferenceBackend
from efe_langchain.backends.reference.grounding_dino import (
    BOX_THRESHOLD,
    TEXT_THRESHOLD,
    detect_boxes,
    load_grounding_dino,
)
from efe_langchain.backends.reference.shared import shared_processor_and_model

__all__ = ["GroundedSamBackend", "SamBackend", "load_sam"]


def load_sam(location: str, device: str, dtype: str):
    """``(processor, model)`` for a SAM folder, cached process-wide."""
    return shared_processor_and_model("sam", "SamProcessor", "SamModel", location, device, dtype)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def _mask_boxes(masks):
    """(K, H, W) bool tensor -> (K, 4) xyxy boxes of each mask's pixels (on the masks' device)."""
    import torch

    rows, cols = masks.any(dim=2).float(), masks.any(dim=1).float()
    h, w = masks.shape[1:]
    y0, y1 = rows.argmax(1), h - rows.flip(1).argmax(1)
    x0, x1 = cols.argmax(1), w - cols.flip(1).argmax(1)
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression, best score first; indices of the boxes kept."""
    order = np.argsort(-scores, kind="stable")
    overlaps = _box_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(int(order[i]))
            suppressed |= overlaps[i] > iou
    return keep


class SamBackend(ReferenceBackend):
    """Options: ``points_per_side`` (32), ``points_per_batch`` (64), ``pred_iou_thresh`` (0.88),
    ``stability_score_thresh`` (0.95), ``box_nms_thresh`` (0.7), ``min_mask_area`` (0): SAM's
    automatic mask generator defaults."""

    name: ClassVar[str] = "sam"
    describes: ClassVar[str] = "Segment Anything (SAM)"
    capabilities: ClassVar[tuple[str, ...]] = ("segment_all", "segment_box")
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "sam"}

    def _load(self) -> None:
        self.processor, self.model = load_sam(self.require(), self.device, self.dtype_name)

    def _embed(self, image, **prompts):
        import torch

        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt", **prompts)
        pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(pixels)
        return inputs, embeddings

    def segment_boxes(self, image, boxes: list[list[float]]) -> np.ndarray:
        """One bool HxW mask per box (GPT4Tools: one mask per box, no multimask).

        Boxes go through the mask decoder ``points_per_batch`` at a time: each box carries its
        own copy of the image embedding through the decoder, so hundreds of boxes at once (a
        low detection threshold) would take tens of GB on a GPU.
        """
        import torch

        self.load()
        if not boxes:
            return np.zeros((0, image.height, image.width), dtype=bool)
        per_batch = int(self.option("points_per_batch", 64))
        inputs, embeddings = self._embed(image, input_boxes=[[[float(v) for v in b] for b in boxes]])
        masks = []
        for start in range(0, len(boxes), per_batch):
            chunk = inputs["input_boxes"][:, start : start + per_batch]
            with torch.inference_mode():
                out = self.model(
                    image_embeddings=embeddings,
                    input_boxes=chunk.to(self.device, self.model.dtype),
                    multimask_output=False,
                )
            (chunk_masks,) = self.processor.image_processor.post_process_masks(
                out.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
            )
            masks.append(chunk_masks[:, 0].numpy().astype(bool))
        return np.concatenate(masks, axis=0)

    def segment_box(self, image, box: list[float]) -> np.ndarray:
        return self.segment_boxes(image, [box])[0]

    def masks_everywhere(self, image) -> list[tuple[np.ndarray, float]]:
        """SAM's automatic masks as ``(bool HxW mask, predicted IoU)``, duplicates removed."""
        import torch
        from tqdm.auto import tqdm

        self.load()
        inputs, embeddings = self._embed(image)
        rh, rw = (int(v) for v in inputs["reshaped_input_sizes"][0])
        n = int(self.option("points_per_side", 32))
        per_batch = int(self.option("points_per_batch", 64))
        iou_thresh = float(self.option("pred_iou_thresh", 0.88))
        stab_thresh = float(self.option("stability_score_thresh", 0.95))
        min_area = int(self.option("min_mask_area", 0))
        # Grid in the resized frame the prompt encoder works in (== SAM's grid in image space).
        offsets = (np.arange(n) + 0.5) / n
        grid = np.stack(np.meshgrid(offsets * rw, offsets * rh), axis=-1).reshape(-1, 2)
        masks, scores, boxes = [], [], []
        batches = range(0, len(grid), per_batch)
        for start in tqdm(batches, desc="SAM segment-everything", disable=len(batches) < 4, leave=False):
            points = torch.tensor(grid[start : start + per_batch], dtype=torch.float32)
            with torch.inference_mode():
                out = self.model(
                    image_embeddings=embeddings,
                    input_points=points[None, :, None, :].to(self.device, self.model.dtype),
                    input_labels=torch.ones((1, len(points), 1), dtype=torch.long, device=self.device),
                    multimask_output=True,
                )
                # Filtering stays on the model's device; only the surviving masks come back.
                ious = out.iou_scores[0].float()  # (points, 3)
                keep = ious > iou_thresh
                if not keep.any():
                    continue
                (full,) = self.processor.image_processor.post_process_masks(
                    out.pred_masks[0].float()[keep][None, :, None],
                    inputs["original_sizes"],
                    inputs["reshaped_input_sizes"],
                    binarize=False,
                )
                full = full[:, 0]
                # Stability: how little the mask changes when the logit threshold moves by +-1.
                high = (full > 1.0).flatten(1).sum(1).float()
                low = (full > -1.0).flatten(1).sum(1).float().clamp(min=1)
                binary = full > 0
                ok = (high / low >= stab_thresh) & (binary.flatten(1).sum(1) > max(min_area, 0))
                if not ok.any():
                    continue
                binary = binary[ok]
                masks.append(binary.cpu().numpy())
                scores.append(ious[keep][ok].cpu().numpy())
                boxes.append(_mask_boxes(binary).cpu().numpy())
        if not masks:
            return []
        all_masks, all_scores = np.concatenate(masks), np.concatenate(scores)
        kept = _nms(np.concatenate(boxes), all_scores, float(self.option("box_nms_thresh", 0.7)))
        return [(all_masks[i], float(all_scores[i])) for i in kept]

    def segment_all(self, image) -> np.ndarray:
        labels = np.zeros((image.height, image.width), dtype=np.int32)
        masks = sorted((m for m, _ in self.masks_everywhere(image)), key=lambda m: -int(m.sum()))
        for index, mask in enumerate(masks, start=1):
            labels[mask] = index
        return labels


class GroundedSamBackend(ReferenceBackend):
    """GroundingDINO finds the boxes, SAM masks each; both models come from the shared cache."""

    name: ClassVar[str] = "grounded-sam"
    describes: ClassVar[str] = "GroundingDINO boxes -> SAM masks"
    capabilities: ClassVar[tuple[str, ...]] = ("segment_object",)
    checkpoints: ClassVar[dict[str, str]] = {"detector": "grounding-dino", "checkpoint": "sam"}

    def _load(self) -> None:
        self.detector = load_grounding_dino(self.require("detector"), self.device, self.dtype_name)
        options = {k: v for k, v in self.options.items() if k != "detector"}
        self.sam = SamBackend(self.device, **options)
        self.sam.load()

    def find(self, image, text: str) -> list[dict]:
        self.load()
        processor, model = self.detector
        return detect_boxes(
            processor,
            model,
            image,
            text,
            float(self.option("box_threshold", BOX_THRESHOLD)),
            float(self.option("text_threshold", TEXT_THRESHOLD)),
        )

    def segment_object(self, image, text: str) -> np.ndarray:
        """The union of SAM masks over every box found for ``text`` (all False when none is)."""
        boxes = [d["box"] for d in self.find(image, text)]
        masks = self.sam.segment_boxes(image, boxes)
        return masks.any(axis=0) if len(masks) else np.zeros((image.height, image.width), dtype=bool)
