"""Remove / replace widen the object's mask before inpainting, as GPT4Tools does (20 px at 512 px).

Checked exactly: the tool's output is the bound inpainter's output on the widened mask (the
segmenter and OpenCV's Telea are deterministic), and the fill reaches into the widened ring.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")

from efe_langchain.tools.editing import MASK_PADDING, RemoveObject, pad_mask, padding_pixels  # noqa: E402
from efe_langchain.tools.registry import load_tools  # noqa: E402
from efe_langchain.tools.segmentation import object_mask  # noqa: E402
from efe_langchain.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("edit") / "ws")


@pytest.fixture(scope="module")
def remove(ws):
    tools = load_tools("ImageEditing.remove", ws)
    if not tools:
        pytest.skip("remove cannot run here")
    return tools[0]


def _call(tool, **args):
    msg = tool.invoke({"type": "tool_call", "id": "e", "name": tool.name, "args": args})
    assert msg.status == "success", msg.content
    return msg


def test_pad_mask_is_gpt4tools_square_neighbourhood():
    mask = np.zeros((50, 60), bool)
    mask[20, 30] = True
    padded = pad_mask(mask, 3)
    ys, xs = np.nonzero(padded)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (17, 23, 27, 33) and padded.sum() == 49
    assert np.array_equal(pad_mask(mask, 0), mask)
    assert padding_pixels(MASK_PADDING, (512, 384)) == 20  # GPT4Tools' images: its 20 px
    assert padding_pixels(MASK_PADDING, (64, 48)) == 2 and padding_pixels(MASK_PADDING, (1024, 768)) == 40
    assert padding_pixels(MASK_PADDING, (8, 8)) == 1 and padding_pixels(0, (512, 512)) == 0


@pytest.mark.parametrize("side", [512, 256])
def test_remove_inpaints_the_widened_mask(ws, remove, side):
    source = ws.add_image(Image.fromarray(skimage_data.astronaut()).resize((side, side)), resize=False)
    image = ws.open_image(source)
    msg = _call(remove, image_path=source, text="face")
    edited = np.asarray(ws.open_image(msg.content))

    mask, _ = object_mask(remove, image, "face")
    assert 0.01 < mask.mean() < 0.2
    pixels = round(20 * side / 512)
    assert msg.artifact["mask_padding"] == pixels
    widened = pad_mask(mask, pixels)
    assert msg.artifact["inpainted_fraction"] == round(float(widened.mean()), 4) > msg.artifact["mask_fraction"]
    inpainter = remove.backend("inpaint")
    assert np.array_equal(edited, np.asarray(inpainter.inpaint(image, widened, "background")))
    tight = np.asarray(inpainter.inpaint(image, mask, "background"))
    assert not np.array_equal(edited, tight)

    # The ring between the object's mask and the widened one was filled, not kept (as it is,
    # bar the inpainter's own few-pixel margin, when the mask is not widened).
    original = np.asarray(image).astype(int)

    def changed(out):
        return np.abs(out.astype(int) - original).sum(axis=-1) > 30

    ring = widened & ~pad_mask(mask, max(3, pixels // 2))
    assert changed(edited)[ring].mean() > 0.4 > 0.1 > changed(tight)[ring].mean()
    assert not changed(edited)[~pad_mask(widened, 5)].any()  # nothing far outside it moved


def test_mask_padding_is_configurable(ws, remove):
    source = ws.add_image(Image.fromarray(skimage_data.astronaut()))
    image = ws.open_image(source)
    tight = RemoveObject(workspace=ws, backends=remove.bind(), mask_padding=0)
    msg = _call(tight, image_path=source, text="face")
    mask, _ = object_mask(remove, image, "face")
    assert msg.artifact["mask_padding"] == 0 and msg.artifact["inpainted_fraction"] == msg.artifact["mask_fraction"]
    expected = remove.backend("inpaint").inpaint(image, mask, "background")
    assert np.array_equal(np.asarray(ws.open_image(msg.content)), np.asarray(expected))
    with pytest.raises(ValueError):
        RemoveObject(workspace=ws, mask_padding=-1)
