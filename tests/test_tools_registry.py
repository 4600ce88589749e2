"""Registry: the tool set (GPT4Tools names verbatim, held-out names absent), spec parsing, backend
choice and sharing, unavailable tools, and the `efe tools` listing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from efe_langchain.backends.classical import CannyEdges, GrabCutSegmenter, HaarFaces, TeleaInpaint
from efe_langchain.prompts import load_tool_specs
from efe_langchain.tools import registry
from efe_langchain.tools.annotators import Image2Canny, Image2Hed, Image2Pose, Image2Scribble
from efe_langchain.tools.detection import FaceFinding, Text2Box
from efe_langchain.tools.editing import RemoveObject, ReplaceObject
from efe_langchain.tools.generation import Text2Image
from efe_langchain.tools.registry import TOOL_CLASSES, list_tools, load_tools, parse_spec, resolve_backends
from efe_langchain.tools.segmentation import ObjectSegmenting
from efe_langchain.workspace import Workspace

HELDOUT = Path("/work/shared/gpt4tools/heldout_tools.txt")
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def _heldout_names() -> list[str]:
    text = HELDOUT.read_text() if HELDOUT.exists() else ""
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not names:  # the shared folder is not everywhere; the names are facts of GPT4Tools
        names = ["Text Detection On Image", "Recognize Face", "Assess the Image Quality", "Detection",
                 "Detect Face", "Generate 3D Asset From User Input Text", "Image Super-Resolution",
                 "Crop the Given Object"]  # fmt: skip
    return names


def test_every_gpt4tools_tool_is_there_verbatim():
    specs = {s.name: s for s in load_tool_specs()}
    ours = {cls.spec().name: cls for cls in TOOL_CLASSES}
    assert set(specs) <= set(ours)
    for name, spec in specs.items():
        tool = ours[name]
        assert tool.spec().description == spec.description  # typos included
        assert tool.spec().n_args == spec.n_args
        assert tool.spec_load_name() == spec.reference_class


def test_names_are_valid_unique_and_instances_carry_them(ws):
    tools = [cls(workspace=ws) for cls in TOOL_CLASSES]
    snake = [t.name for t in tools]
    gpt = [t.gpt4tools_name for t in tools]
    assert len(set(snake)) == len(snake) == len(TOOL_CLASSES)
    assert len(set(gpt)) == len(gpt)
    for t in tools:
        assert OPENAI_NAME.match(t.name), t.name
        assert t.description and t.n_args >= 1
        fields = t.args_schema.model_fields
        required = [f for f, info in fields.items() if info.is_required()]
        assert len(required) == t.n_args, (t.name, required)


def test_new_tools_avoid_heldout_names_and_follow_gpt4tools_style():
    heldout = {n.lower() for n in _heldout_names()}
    assert len(heldout) >= 8
    gpt = {s.name for s in load_tool_specs()}
    new = [cls for cls in TOOL_CLASSES if cls.spec().name not in gpt]
    assert len(new) >= 5
    for cls in new:
        spec = cls.spec()
        assert spec.name.lower() not in heldout
        assert not any(h in spec.description.lower() for h in heldout if len(h) > 12)
        assert spec.description.startswith("useful when")
        assert "The input to this tool should be" in spec.description
        assert spec.in_training_data is False
    for cls in TOOL_CLASSES:
        assert cls.spec().name.lower() not in heldout


def test_parse_gpt4tools_load_spec():
    got = parse_spec("Image2Pose_cpu,Image2Canny_cpu,Text2Box_cuda:0")
    assert got == [(Image2Pose, "cpu"), (Image2Canny, "cpu"), (Text2Box, "cuda:0")]
    assert parse_spec(["Image2Pose_cpu", " Text2Box_cuda:1 "]) == [(Image2Pose, "cpu"), (Text2Box, "cuda:1")]


def test_parse_by_names_and_composites():
    assert parse_spec(["Edge Detection On Image"]) == [(Image2Canny, "cpu")]
    assert parse_spec(["edge_detection_on_image_cuda:0"]) == [(Image2Canny, "cuda:0")]
    assert parse_spec("find_faces_on_image") == [(FaceFinding, "cpu")]
    # GPT4Tools' ImageEditing class holds both remove and replace.
    assert parse_spec("ImageEditing_cuda:0") == [(RemoveObject, "cuda:0"), (ReplaceObject, "cuda:0")]
    # Case does not matter; duplicates collapse to the first.
    assert parse_spec("image2canny,Image2Canny_cuda:0") == [(Image2Canny, "cpu")]


def test_unknown_names_list_close_matches():
    with pytest.raises(ValueError) as info:
        parse_spec("Image2Cany_cpu")
    msg = str(info.value)
    assert "Image2Cany" in msg and "Image2Canny" in msg
    with pytest.raises(ValueError, match="Segment the given object"):
        parse_spec(["Segment the given objct"])


def test_load_tools_gives_only_runnable_tools(ws):
    tools = load_tools(workspace=ws)
    infos = {i.name: i for i in list_tools()}
    assert {t.name for t in tools} == {n for n, i in infos.items() if i.available}
    for t in tools:
        assert t.workspace is ws and t.backends
        for cap, b in t.backends.items():
            assert b.availability()[0], (t.name, cap)
    # What the machine of this project always has: the classical backends.
    names = {t.name for t in tools}
    for must in ("edge_detection_on_image", "line_detection_on_image", "segment_the_image", "rate_the_quality_of_image"):
        assert must in names


def test_unavailable_tool_says_what_is_missing(ws, monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "text2image", ("efe_langchain.backends.nowhere:StableDiffusion",))
    info = next(i for i in list_tools() if i.load_name == "Text2Image")
    if info.available:
        pytest.skip("Stable Diffusion weights are present here")
    assert "nowhere" in info.reason or "text2image" in info.reason
    with pytest.warns(UserWarning, match="not loaded"):
        assert load_tools(["Text2Image_cpu"], workspace=ws) == []
    tool = load_tools(["Text2Image_cpu"], workspace=ws, only_available=False)[0]
    out = tool.run_react("a red bus")
    assert out.startswith("Error:") and "cannot run here" in out and "text2image" in out
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": {"text": "a red bus"}})
    assert msg.status == "error" and "cannot run here" in msg.content


def test_broken_backend_module_does_not_break_the_registry(monkeypatch):
    path = "efe_langchain.backends.not_written_yet:Whatever"
    monkeypatch.setitem(registry.BACKENDS, "edges", (path, "efe_langchain.backends.classical:CannyEdges"))
    info = next(i for i in list_tools() if i.load_name == "Image2Canny")
    assert info.available and info.chosen == {"edges": "opencv-canny"}
    broken = next(b for b in info.backends if b.path == path)
    assert not broken.available and "not installed or not written yet" in broken.reason


def test_replace_never_binds_a_hole_filler():
    bound, why = resolve_backends(ReplaceObject)
    if bound is not None:
        assert getattr(type(bound["inpaint"]), "follows_prompt", True)
    else:
        assert "cannot follow a prompt" in why
    bound, _ = resolve_backends(RemoveObject)
    assert bound is not None and "inpaint" in bound  # Telea is enough to remove


def test_prefer_changes_the_choice():
    default, _ = resolve_backends(FaceFinding)
    classical, _ = resolve_backends(FaceFinding, prefer=("classical",))
    assert isinstance(classical["faces"], HaarFaces)
    if default["faces"].kind != "classical":
        assert default["faces"].kind in ("embedded", "reference")


def test_composite_tools_share_one_backend_instance(ws):
    seg, remove = load_tools(["ObjectSegmenting", "ImageEditing.remove"], workspace=ws)
    assert isinstance(seg, ObjectSegmenting) and isinstance(remove, RemoveObject)
    shared = set(seg.backends) & set(remove.backends)
    assert shared  # both find the object the same way
    for cap in shared:
        assert seg.backends[cap] is remove.backends[cap]
    if "segment_box" in seg.backends:
        assert seg.backends["segment_box"] is registry.get_backend(GrabCutSegmenter) or seg.backends["segment_box"].kind == "reference"


def test_device_placement_shares_cpu_only_backends(ws):
    a, b = load_tools(["Image2Canny_cpu", "Hed Detection On Image_cuda:0"], workspace=ws)
    assert a.device == "cpu" and b.device == "cuda:0"
    # Classical and embedded backends run on the CPU whatever the spec says, once.
    assert a.backends["edges"] is registry.get_backend(CannyEdges, "cuda:1")
    hed, scribble = load_tools(["Image2Hed", "Image2Scribble"], workspace=ws)
    assert isinstance(hed, Image2Hed) and isinstance(scribble, Image2Scribble)
    assert hed.backends["hed"] is scribble.backends["scribble"]


def test_tools_resolve_lazily_when_built_directly(ws):
    tool = Image2Canny(workspace=ws)
    assert tool.backends == {}
    rel = ws.add_image(_png())
    out = tool.run_react(rel)
    assert re.match(r"^image/[0-9a-f]{4}_edge_", out)
    assert isinstance(tool.backends["edges"], CannyEdges)
    assert tool.backends["edges"] is registry.get_backend(CannyEdges)


def _png() -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (128, 128), "black")
    ImageDraw.Draw(img).rectangle((30, 30, 90, 90), fill="white")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# -- efe tools ----------------------------------------------------------------------------------
def test_efe_tools_table(capsys):
    from efe_langchain.cli import main

    assert main(["tools"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for cls in TOOL_CLASSES:
        assert any(cls.spec().name in line for line in lines), cls.spec().name
    assert re.search(r"^yes\s+Edge Detection On Image\s+Image2Canny\s+edge_detection_on_image", out, re.M)
    assert re.search(r"^\s+\* edges\s+opencv-canny\s+classical", out, re.M)
    n_ok = sum(i.available for i in list_tools())
    assert f"{n_ok} of {len(TOOL_CLASSES)} tools can run here." in out


def test_efe_tools_json_and_filters(capsys):
    from efe_langchain.cli import main

    assert main(["tools", "--json", "--load", "Image2Canny,ImageEditing"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["load_name"] for r in rows] == ["Image2Canny", "ImageEditing.remove", "ImageEditing.replace"]
    assert rows[0]["available"] and rows[0]["chosen"] == {"edges": "opencv-canny"}
    assert all({"capability", "name", "kind", "available", "reason"} <= set(b) for r in rows for b in r["backends"])
    assert main(["tools", "--json", "--available"]) == 0
    assert all(r["available"] for r in json.loads(capsys.readouterr().out))


def test_efe_tools_unknown_name_is_a_clear_error(capsys):
    from efe_langchain.cli import main

    assert main(["tools", "--load", "Image2Cany"]) == 2
    err = capsys.readouterr().err
    assert "unknown tool 'Image2Cany'" in err and "Image2Canny" in err


def test_efe_tools_memory_hook(capsys):
    import importlib

    from efe_langchain.cli import main

    assert main(["tools", "--memory", "--load", "Image2Canny"]) == 0
    captured = capsys.readouterr()
    try:
        has_estimates = hasattr(importlib.import_module("efe_langchain.backends.reference"), "estimate_memory")
    except ImportError:
        has_estimates = False
    if not has_estimates:
        assert "estimate_memory" in captured.err
    assert "Edge Detection On Image" in captured.out


def test_teleainpaint_is_a_listed_remove_backend():
    info = next(i for i in list_tools() if i.load_name == "ImageEditing.remove")
    assert any(b.name == TeleaInpaint.name and b.available for b in info.backends)


def test_efe_tools_check_runs_the_tools(capsys):
    from efe_langchain.cli import main

    assert main(["tools", "--check", "--json", "--load", "Image2Canny,QualityRating"]) == 0
    rows = {r["load_name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Image2Canny"]["check"]["ok"]
    assert re.fullmatch(r"image/[0-9a-f]{4}_edge_[0-9a-f]{8}_[0-9a-f]{8}\.png", rows["Image2Canny"]["check"]["output"])
    assert rows["QualityRating"]["check"]["output"].startswith("Quality of image/")
    assert main(["tools", "--check", "--load", "Image2Canny"]) == 0
    assert re.search(r"check: ran fine in [0-9.]+ s -> image/", capsys.readouterr().out)


def test_efe_tools_memory_totals_per_device(capsys, tmp_path, monkeypatch):
    reference = pytest.importorskip("efe_langchain.backends.reference")
    from efe_langchain.cli import main

    monkeypatch.setenv("EFE_MODEL_DIR", str(tmp_path))  # no weights: the published parameter counts
    spec = "Text2Box_cuda:0,Segmenting_cuda:0,ObjectSegmenting_cuda:0,ImageEditing_cuda:1,Image2Canny"
    assert main(["tools", "--json", "--memory", "--load", spec, "--device", "cuda:2"]) == 0
    rows = {r["load_name"]: r for r in json.loads(capsys.readouterr().out)}
    expected = reference.estimate_placement(
        {"Text2Box": "cuda:0", "Segmenting": "cuda:0", "ObjectSegmenting": "cuda:0",
         "ImageEditing.remove": "cuda:1", "ImageEditing.replace": "cuda:1"}  # fmt: skip
    )
    assert rows["Text2Box"]["device"] == "cuda:0" and rows["Text2Box"]["device_memory_total"] == expected["cuda:0"]
    assert rows["ImageEditing.replace"]["device_memory_total"] == expected["cuda:1"]
    # GroundingDINO and SAM are held once on cuda:0: less than the rows added up.
    on_0 = [rows[n]["memory"] for n in ("Text2Box", "Segmenting", "ObjectSegmenting")]
    assert max(on_0) < expected["cuda:0"] < sum(on_0)
    # A name without _device goes on --device; an annotator needs no reference memory anywhere.
    assert rows["Image2Canny"]["device"] == "cuda:2" and rows["Image2Canny"]["memory"] is None
    assert rows["Image2Canny"]["device_memory_total"] is None

    assert main(["tools", "--memory", "--load", spec]) == 0
    out = capsys.readouterr().out
    gib = {dev: f"{value / 2**30:.1f} GiB" for dev, value in expected.items()}
    assert f"memory on cuda:0: {gib['cuda:0']} for Segmenting, Text2Box, ObjectSegmenting (shared models counted once)" in out
    assert f"memory on cuda:1: {gib['cuda:1']} for ImageEditing.remove, ImageEditing.replace" in out
    assert "memory on cpu" not in out  # Image2Canny went to cpu (the default) and needs none
    row = out.split("Detect the Give Object", 1)[1].splitlines()[0]
    assert f"[reference weights: {rows['Text2Box']['memory'] / 2**30:.1f} GiB on cuda:0]" in row
