"""OpenPose-style skeleton drawing, so ControlNet's openpose model reads our poses.

The colours, limb order and drawing (coloured joints, translucent ellipse limbs on black) follow
ControlNet's ``annotator/openpose/util.draw_bodypose``; that is the image the openpose ControlNet
was trained on, whatever detector produced the keypoints.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["OPENPOSE_KEYPOINTS", "OPENPOSE_LIMBS", "OPENPOSE_COLORS", "MEDIAPIPE_TO_OPENPOSE", "draw_openpose"]

# COCO-18 order used by OpenPose and ControlNet.
OPENPOSE_KEYPOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# 1-based pairs as in ControlNet's limbSeq; only the first 17 are drawn there (the last two,
# shoulder-to-ear, are skipped), and we keep that so the picture matches what the model saw.
OPENPOSE_LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
_DRAWN_LIMBS = 17

OPENPOSE_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip

# MediaPipe's 33 BlazePose landmarks -> OpenPose index; "neck" (None) is the shoulders' midpoint.
MEDIAPIPE_TO_OPENPOSE = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)

_STICK_WIDTH = 4
_JOINT_RADIUS = 4


def draw_openpose(size: tuple[int, int], people: Sequence[Sequence[Sequence[float] | None]]) -> np.ndarray:
    """An RGB uint8 image (H, W, 3) of each person's 18 keypoints ``(x, y)`` or None, on black."""
    import cv2

    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for keypoints in people:
        for i, point in enumerate(keypoints):
            if point is not None:
                x, y = point[0], point[1]
                cv2.circle(canvas, (int(x), int(y)), _JOINT_RADIUS, OPENPOSE_COLORS[i], thickness=-1)
    for limb in range(_DRAWN_LIMBS):
        a, b = OPENPOSE_LIMBS[limb]
        for keypoints in people:
            pa, pb = keypoints[a - 1], keypoints[b - 1]
            if pa is None or pb is None:
                continue
            layer = canvas.copy()
            mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
            length = math.hypot(pa[0] - pb[0], pa[1] - pb[1])
            angle = math.degrees(math.atan2(pa[1] - pb[1], pa[0] - pb[0]))
            polygon = cv2.ellipse2Poly(
                (int(mx), int(my)), (int(length / 2), _STICK_WIDTH), int(angle), 0, 360, 1
            )
            cv2.fillConvexPoly(layer, polygon, OPENPOSE_COLORS[limb])
            canvas = cv2.addWeighted(canvas, 0.4, layer, 0.6, 0)
    return canvas
