"""Text reading with RapidOCR and the PP-OCR ONNX models packaged inside the ``rapidocr`` wheel.

rapidocr 3.x downloads a model whenever its config names none, so every model path is set to
the packaged file: PP-OCRv6 small detection and recognition (multilingual: Latin scripts,
Chinese, Japanese, ...) and the PP-OCR mobile text-direction classifier. They run on
onnxruntime, which rapidocr does not install itself.
"""

from __future__ import annotations

import threading

import numpy as np

from efe_langchain.backends.base import Backend

__all__ = ["RapidOCRBackend", "RAPIDOCR_MODELS"]

RAPIDOCR_DIST = "rapidocr"
# config section -> file inside the wheel
RAPIDOCR_MODELS = {
    "Det": "rapidocr/models/PP-OCRv6_det_small.onnx",
    "Cls": "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "rapidocr/models/PP-OCRv6_rec_small.onnx",
}


class RapidOCRBackend(Backend):
    """Reads printed text: lines with their boxes and recognition scores."""

    name = "rapidocr"
    kind = "embedded"
    label = (
        "RapidOCR with the PP-OCRv6 small models packaged in the rapidocr wheel (onnxruntime): "
        "printed text lines in Latin and CJK scripts, with boxes; not handwriting"
    )
    capabilities = ("ocr",)
    requires = ("rapidocr", "onnxruntime")
    install_hint = "pip install 'rapidocr>=3,<4' onnxruntime==1.31.1"

    def __init__(self, device: str = "cpu", **options) -> None:
        super().__init__(device, **options)
        self._run_lock = threading.Lock()
        # Photos without text give a few low-score "lines" (a "0" on a cat's fur at 0.73, "0000"
        # on a coat at 0.77) while printed text scores above 0.95; lone characters are the
        # commonest false reading, so they must be surer.
        #: lines whose recognition score is below this are dropped
        self.min_score = float(options.get("min_score", 0.8))
        #: a one-character line is kept only at this score or above
        self.min_single_char_score = float(options.get("min_single_char_score", 0.95))
        #: images longer than this ratio of their sides are padded before reading
        self.max_aspect = 4

    @staticmethod
    def model_paths() -> dict[str, str]:
        from efe_langchain.embedded import find_distribution_file

        return {section: str(find_distribution_file(RAPIDOCR_DIST, rel)) for section, rel in RAPIDOCR_MODELS.items()}

    def missing(self) -> list[str]:
        from efe_langchain.embedded import EmbeddedWeightsMissing, find_distribution_file

        missing = super().missing()
        if "rapidocr" in missing:
            return missing
        for rel in RAPIDOCR_MODELS.values():
            try:
                find_distribution_file(RAPIDOCR_DIST, rel)
            except EmbeddedWeightsMissing as exc:
                missing.append(str(exc))
        return missing

    def _load(self) -> None:
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            "Global.text_score": self.min_score,
            # rapidocr's default scales the shorter side UP to 736 px; PaddleOCR's own default
            # (longer side at most 960, no upscaling) read 10-24 px print on a 512x384 image just
            # as well here, in half the time.
            "Det.limit_type": "max",
            "Det.limit_side_len": 960,
        }
        for section, path in self.model_paths().items():
            params[f"{section}.model_path"] = path
        self._engine = RapidOCR(params=params)

    def ocr(self, image) -> list[dict]:
        """Text lines in rapidocr's reading order (top to bottom, left to right): ``text``,
        axis-aligned ``box`` [x0, y0, x1, y1] (pixels), ``score`` (recognition confidence) and
        the detected quadrilateral as ``polygon``."""
        self.load()
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        # Very long strips make the detector's input huge or its crops degenerate (rapidocr's
        # default scaling turned 3x500 into 736x122667): pad right/bottom, keeping coordinates,
        # to at most 1:4.
        height, width = rgb.shape[:2]
        pad_h = max(0, -(-width // self.max_aspect) - height)
        pad_w = max(0, -(-height // self.max_aspect) - width)
        if pad_h or pad_w:
            fill = np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8)
            padded = np.empty((height + pad_h, width + pad_w, 3), dtype=np.uint8)
            padded[:] = fill
            padded[:height, :width] = rgb
            rgb = padded
        # rapidocr takes OpenCV's BGR order for arrays.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._run_lock:
            result = self._engine(bgr)
        if result.boxes is None or result.txts is None:
            return []
        width, height = image.size
        lines = []
        for quad, text, score in zip(result.boxes, result.txts, result.scores):
            text = str(text).strip()
            if not text or float(score) < self.min_score:
                continue
            if len(text) == 1 and float(score) < self.min_single_char_score:
                continue
            quad = np.asarray(quad, dtype=np.float32)
            box = [
                max(0, int(np.floor(quad[:, 0].min()))),
                max(0, int(np.floor(quad[:, 1].min()))),
                min(width, int(np.ceil(quad[:, 0].max()))),
                min(height, int(np.ceil(quad[:, 1].max()))),
            ]
            lines.append({"text": text, "box": box, "score": float(score), "polygon": quad.round(1).tolist()})
        return lines
