"""Classical backends on real images: edges where edges are, a face on the astronaut, lines on
drawn shapes, hole filling that erases, masks that cover the object, quality measures that move
the right way."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import skimage.data as data
from PIL import Image, ImageDraw, ImageFilter

from efe_langchain.backends.base import CAPABILITIES, KINDS
from efe_langchain.backends.classical import (
    AutoEnhance,
    CannyEdges,
    FelzenszwalbSegmenter,
    GrabCutSegmenter,
    HaarFaces,
    ImageQuality,
    LineSegments,
    TeleaInpaint,
)
from efe_langchain.backends.keyword_editor import KeywordEditor

ALL = [CannyEdges, LineSegments, HaarFaces, TeleaInpaint, GrabCutSegmenter, FelzenszwalbSegmenter, ImageQuality, AutoEnhance,
       KeywordEditor]


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(data.astronaut())


def _rectangle_image(size=256, box=(64, 80, 192, 176), fill=(220, 40, 40), bg=(30, 30, 30)):
    img = Image.new("RGB", (size, size), bg)
    ImageDraw.Draw(img).rectangle(box, fill=fill)
    return img


@pytest.mark.parametrize("cls", ALL)
def test_backends_are_honest_classical_and_implement_their_capabilities(cls):
    b = cls()
    assert b.kind == "classical" and b.kind in KINDS
    assert b.name and b.label
    ok, why = b.availability()
    assert ok, why
    for cap in cls.capabilities:
        assert cap in CAPABILITIES
        # The method takes exactly the documented parameters, by name, in order.
        params = list(inspect.signature(getattr(b, cap)).parameters)
        documented = re.sub(r"\[[^\]]*\]", "", CAPABILITIES[cap].split("(", 1)[1].split(") ->", 1)[0])
        assert params == [p.split(":")[0].split("=")[0].strip() for p in documented.split(",") if p.strip()]


def test_canny_edges_lie_on_the_rectangle_border():
    img = _rectangle_image()
    edges = np.asarray(CannyEdges().edges(img))
    assert edges.shape == (256, 256, 3) and set(np.unique(edges)) <= {0, 255}
    on = edges[..., 0] > 0
    border = np.zeros_like(on)
    x0, y0, x1, y1 = 64, 80, 192, 176
    border[y0 - 2 : y1 + 3, x0 - 2 : x1 + 3] = True
    border[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2] = False
    assert on.sum() > 4 * 100  # the four sides are found
    assert on[~border].sum() == 0  # and nothing else: flat regions have no edges


def test_canny_on_camera_matches_opencv_thresholds():
    import cv2

    img = Image.fromarray(data.camera()).convert("RGB")
    ours = np.asarray(CannyEdges().edges(img))[..., 0]
    ref = cv2.Canny(data.camera(), 100, 200)
    assert np.array_equal(ours, ref)


def test_lines_on_checkerboard_are_axis_aligned():
    img = Image.fromarray(data.checkerboard()).convert("RGB")
    segments = LineSegments().segments(img)
    assert len(segments) >= 10
    angles = [abs(np.degrees(np.arctan2(y1 - y0, x1 - x0))) % 90 for x0, y0, x1, y1 in segments]
    assert all(min(a, 90 - a) < 3 for a in angles)  # horizontal or vertical, as the squares are


def test_line_map_draws_the_rectangle_sides_only():
    img = _rectangle_image()
    out = np.asarray(LineSegments().lines(img))[..., 0] > 0
    assert out.shape == (256, 256)
    assert out[80 - 3 : 80 + 4, 70:186].any(axis=0).mean() > 0.9  # top side covered
    assert not out[110:150, 100:160].any()  # the flat inside has no lines


def test_haar_finds_the_astronaut_face(astronaut):
    faces = HaarFaces().faces(astronaut)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0]["box"]
    # Eileen Collins' face: roughly x 170-280, y 60-175 in the 512x512 picture.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 190 < cx < 260 and 80 < cy < 150
    assert 0 < faces[0]["score"] <= 1


def test_haar_finds_no_face_in_coffee():
    assert HaarFaces().faces(Image.fromarray(data.coffee())) == []


def test_telea_erases_a_drawn_square(astronaut):
    img = astronaut.copy()
    ImageDraw.Draw(img).rectangle((380, 380, 440, 440), fill=(0, 255, 0))
    mask = np.zeros((512, 512), bool)
    mask[380:441, 380:441] = True
    out = np.asarray(TeleaInpaint().inpaint(img, mask, "ignored"))
    patch = out[390:430, 390:430].astype(int)
    assert out.shape == (512, 512, 3)
    # No green left: the fill comes from the surroundings.
    assert not ((patch[..., 1] > 200) & (patch[..., 0] < 80)).any()
    outside = np.asarray(img)[:300, :300]
    assert np.array_equal(out[:300, :300], outside)  # far away nothing changes


def test_telea_refuses_mismatched_mask(astronaut):
    with pytest.raises(ValueError, match="mask shape"):
        TeleaInpaint().inpaint(astronaut, np.zeros((10, 10), bool), "")


def test_telea_says_it_cannot_follow_prompts():
    assert TeleaInpaint.follows_prompt is False


def test_grabcut_box_mask_covers_the_object_not_the_background():
    img = _rectangle_image()
    mask = GrabCutSegmenter().segment_box(img, [50, 66, 206, 190])
    obj = np.zeros_like(mask)
    obj[80:177, 64:193] = True
    iou = (mask & obj).sum() / (mask | obj).sum()
    assert iou > 0.9


def test_grabcut_foreground_on_centred_subject():
    img = Image.new("RGB", (256, 256), (240, 240, 240))
    ImageDraw.Draw(img).ellipse((70, 60, 190, 200), fill=(20, 90, 200))
    mask = GrabCutSegmenter().foreground_mask(img)
    assert mask[130, 130] and not mask[10, 10]
    assert 0.15 < mask.mean() < 0.35


def test_felzenszwalb_labels_regions():
    img = _rectangle_image()
    labels = FelzenszwalbSegmenter().segment_all(img)
    assert labels.dtype == np.int32 and labels.shape == (256, 256)
    assert labels.min() >= 1
    assert labels[120, 120] != labels[10, 10]  # the square is its own region
    assert len(np.unique(labels)) < 10


def test_quality_measures_move_the_right_way(astronaut):
    q = ImageQuality()
    sharp = q.quality(astronaut)
    blurred = q.quality(astronaut.filter(ImageFilter.GaussianBlur(4)))
    dark = q.quality(Image.fromarray((np.asarray(astronaut) * 0.15).astype(np.uint8)))
    rng = np.random.default_rng(0)
    noisy_arr = np.asarray(astronaut).astype(float) + rng.normal(0, 25, (512, 512, 3))
    noisy = q.quality(Image.fromarray(noisy_arr.clip(0, 255).astype(np.uint8)))
    grey = q.quality(astronaut.convert("L").convert("RGB"))
    assert blurred["sharpness"] < sharp["sharpness"] / 10 and "blurry" in blurred["verdict"]
    assert dark["brightness"] < 0.1 and "underexposed" in dark["verdict"]
    assert noisy["noise_sigma"] > 4 * sharp["noise_sigma"] and "noisy" in noisy["verdict"]
    assert grey["colourfulness"] < 1 < sharp["colourfulness"]
    assert sharp["verdict"] == "no obvious problems"


def test_auto_enhance_removes_a_colour_cast_and_adds_contrast():
    coffee = np.asarray(data.coffee()).astype(float)
    # A dull photo under warm light: less contrast, red up, blue down.
    dull = np.clip((coffee - 128) * 0.4 + 128, 0, 255) * np.array([1.25, 1.0, 0.7])
    img = Image.fromarray(dull.clip(0, 255).astype(np.uint8))
    out = np.asarray(AutoEnhance().enhance(img)).astype(float)
    means_in, means_out = np.asarray(img).reshape(-1, 3).mean(0), out.reshape(-1, 3).mean(0)
    assert np.ptp(means_out) < 0.5 * np.ptp(means_in)  # channels closer together: cast gone
    assert out.mean(-1).std() > 1.3 * np.asarray(img).astype(float).mean(-1).std()  # more contrast
    assert out.shape == np.asarray(img).shape


def test_canny_sees_colour_boundaries_of_equal_brightness():
    # Red and a green of (almost) the same luma: a grey-only Canny would miss this boundary.
    img = Image.new("RGB", (128, 128), (200, 0, 0))
    ImageDraw.Draw(img).rectangle((64, 0, 127, 127), fill=(0, 102, 0))
    edges = np.asarray(CannyEdges().edges(img))[..., 0] > 0
    assert edges[:, 60:68].any(axis=1).all()
