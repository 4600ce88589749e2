"""Backends whose weights ship inside registry packages: they run here with nothing downloaded.

Importing this package is cheap: model libraries are imported when a backend is first used.
"""

from efe_langchain.backends.embedded.mediapipe_models import (
    MediaPipeFaces,
    MediaPipePersonSegmentation,
    MediaPipePose,
)

__all__ = ["MediaPipeFaces", "MediaPipePersonSegmentation", "MediaPipePose"]
