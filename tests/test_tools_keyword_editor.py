"""The classical stand-in for InstructPix2Pix: each named adjustment does what it says, several
apply in the order named, and an instruction it cannot follow is refused with what it knows."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data as data
from PIL import Image

from efe_langchain.backends.keyword_editor import EDITS, KeywordEditor, parse_instruction
from efe_langchain.tools.registry import list_tools, load_tools
from efe_langchain.workspace import Workspace


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(data.astronaut()).resize((128, 96))


@pytest.fixture(scope="module")
def editor():
    return KeywordEditor().load()


def _arr(img):
    return np.asarray(img, dtype=np.int16)


def test_black_and_white_sepia_and_invert(editor, photo):
    grey = _arr(editor.instruct(photo, "make it black and white"))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    sepia = _arr(editor.instruct(photo, "give it a sepia look")).reshape(-1, 3).mean(0)
    assert sepia[0] > sepia[1] > sepia[2]  # warm browns
    assert (_arr(editor.instruct(photo, "invert the colors")) == 255 - _arr(photo)).all()


def test_brightness_follows_the_words_including_less_bright(editor, photo):
    mean = _arr(photo).mean()
    assert _arr(editor.instruct(photo, "make it brighter")).mean() > mean + 10
    assert _arr(editor.instruct(photo, "make it less bright")).mean() < mean - 10
    assert _arr(editor.instruct(photo, "it is too dark")).mean() > mean + 10


def test_geometry_mirror_flip_and_rotation(editor, photo):
    assert (_arr(editor.instruct(photo, "mirror it")) == _arr(photo)[:, ::-1]).all()
    assert (_arr(editor.instruct(photo, "flip it vertically")) == _arr(photo)[::-1]).all()
    assert editor.instruct(photo, "rotate it 90 degrees").size == (96, 128)
    # 90 clockwise by default, counter-clockwise when asked: the top row ends on opposite sides.
    cw, ccw = _arr(editor.instruct(photo, "rotate 90")), _arr(editor.instruct(photo, "rotate 90 counterclockwise"))
    assert (cw[:, -1] == _arr(photo)[0]).all() and (ccw[:, 0] == _arr(photo)[0][::-1]).all()


def test_filters_change_the_image_the_expected_way(editor, photo):
    def sharpness(img):
        g = _arr(img.convert("L")).astype(float)
        return np.abs(np.diff(g, axis=1)).mean()

    assert sharpness(editor.instruct(photo, "blur it")) < 0.8 * sharpness(photo)
    assert sharpness(editor.instruct(photo, "sharpen it")) > 1.1 * sharpness(photo)
    for words in ("turn it into a cartoon", "pencil sketch please", "make it a painting", "pixelate it"):
        out = editor.instruct(photo, words)
        assert out.size == photo.size and out.mode == "RGB" and not (_arr(out) == _arr(photo)).all(), words


def test_several_edits_apply_in_the_order_named(editor, photo):
    assert [n for n, _ in parse_instruction("mirror the photo, then make it black and white")] == ["mirror", "black and white"]
    both = editor.instruct(photo, "mirror the photo, then make it black and white")
    assert (_arr(both) == _arr(editor.instruct(editor.instruct(photo, "mirror"), "black and white"))).all()


def test_an_instruction_it_cannot_follow_is_refused_with_what_it_knows(editor, photo):
    with pytest.raises(ValueError, match="found nothing it can do in 'put a hat on the man'.*black and white.*InstructPix2Pix"):
        editor.instruct(photo, "put a hat on the man")
    assert len(EDITS) >= 15


def test_the_instruct_tool_runs_out_of_the_box_and_says_which_backend(tmp_path, photo):
    info = next(i for i in list_tools() if i.gpt4tools_name == "Instruct Image Using Text")
    ws = Workspace(tmp_path / "ws")
    source = ws.add_image(photo, resize=False)
    tool = load_tools(["InstructPix2Pix"], workspace=ws)[0]
    if info.chosen.get("instruct") != "keyword-editor":
        pytest.skip("InstructPix2Pix's weights are installed here; the tool uses them")
    ok = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": {"image_path": source, "text": "make it black and white"}})
    assert ok.status == "success" and ok.artifact["backends"]["instruct"]["name"] == "keyword-editor"
    assert ok.artifact["backends"]["instruct"]["kind"] == "classical"
    out = _arr(ws.open_image(ok.content))
    assert (out[..., 0] == out[..., 2]).all()
    bad = tool.invoke({"type": "tool_call", "id": "2", "name": tool.name, "args": {"image_path": source, "text": "add a dog"}})
    assert bad.status == "error" and "only knows" in bad.content
