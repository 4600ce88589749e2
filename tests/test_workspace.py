"""Workspace: GPT4Tools naming and resizing, and every path or image it must refuse."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from efe_langchain.workspace import Workspace, WorkspaceError, gpt4tools_size

UPLOAD_RE = re.compile(r"^image/[0-9a-f]{8}\.png$")


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def _photo(w=600, h=400, mode="RGB"):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def test_gpt4tools_size_rules():
    assert gpt4tools_size(600, 400) == (512, 320)  # 341.3 -> 320
    assert gpt4tools_size(400, 600) == (320, 512)
    assert gpt4tools_size(512, 512) == (512, 512)
    assert gpt4tools_size(100, 100) == (512, 512)  # GPT4Tools scales small uploads up too
    w, h = gpt4tools_size(3000, 40)
    assert (w, h) == (512, 64)  # never a zero side


@pytest.mark.parametrize("kind", ["path", "bytes", "pil"])
def test_add_image_names_resizes_and_converts(ws, tmp_path, kind):
    img = _photo(mode="RGBA")
    if kind == "path":
        src = tmp_path / "upload.webp"
        img.save(src)
    elif kind == "bytes":
        buf = io.BytesIO()
        img.save(buf, "PNG")
        src = buf.getvalue()
    else:
        src = img
    rel = ws.add_image(src)
    assert UPLOAD_RE.match(rel)
    out = Image.open(ws.root / rel)
    assert out.format == "PNG" and out.mode == "RGB"
    assert out.size == (512, 320)
    assert max(out.size) <= 512 and all(s % 64 == 0 for s in out.size)


def test_transparent_upload_becomes_white_not_black(ws):
    img = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    rel = ws.add_image(img)
    assert ws.open_image(rel).getpixel((10, 10)) == (255, 255, 255)


def test_uploads_get_distinct_names(ws):
    names = {ws.add_image(_photo(64, 64)) for _ in range(20)}
    assert len(names) == 20


def test_new_path_follows_gpt4tools_chain(ws):
    up = ws.add_image(_photo())
    first = ws.new_path("edge", up)
    org = Path(up).stem
    assert re.match(rf"^image/[0-9a-f]{{4}}_edge_{org}_{org}\.png$", first)
    second = ws.new_path("canny2image", first)
    prev = Path(first).stem.split("_")[0]
    assert re.match(rf"^image/[0-9a-f]{{4}}_canny2image_{prev}_{org}\.png$", second)
    # A tag with underscores or odd characters would break the 4-part rule; it is cleaned.
    odd = ws.new_path("My Tool_v2!", up)
    assert len(Path(odd).stem.split("_")) == 4
    # Text-to-image has no source: a fresh upload-style name.
    assert UPLOAD_RE.match(ws.new_path("text2image", None))


def test_new_path_from_foreign_name_is_trimmed(ws):
    rel = ws.new_path("edge", "image/a_very_long_user_file_name_with_parts.png")
    parts = Path(rel).stem.split("_")
    assert len(parts) == 4 and all(len(p) <= 24 for p in parts)


def test_save_image_round_trip_and_fresh_names(ws):
    up = ws.add_image(_photo())
    img = ws.open_image(up)
    a = ws.save_image(img, "edge", up)
    b = ws.save_image(img, "edge", up)
    assert a != b
    assert np.array_equal(np.asarray(ws.open_image(a)), np.asarray(img))


def test_paths_are_cwd_independent(ws, tmp_path, monkeypatch):
    up = ws.add_image(_photo())
    monkeypatch.chdir(tmp_path)
    assert ws.resolve(up) == ws.root / up
    assert ws.open_image(up).size == (512, 320)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EFE_WORKSPACE", str(tmp_path / "from_env"))
    ws = Workspace()
    assert ws.root == (tmp_path / "from_env").resolve()
    assert (ws.root / "image").is_dir()


def test_model_style_path_variants_are_accepted(ws):
    up = ws.add_image(_photo())
    for variant in (f" {up} ", f"'{up}'", f"{up}.", str(ws.root / up)):
        assert ws.resolve(variant) == ws.root / up


# -- refusals ------------------------------------------------------------------------------------
def _refused(ws, path, words):
    with pytest.raises(WorkspaceError) as info:
        ws.resolve(path)
    assert isinstance(info.value, ValueError)
    assert re.search(words, str(info.value)), str(info.value)


def test_refuses_dotdot(ws, tmp_path):
    (tmp_path / "secret.png").write_bytes(b"x")
    _refused(ws, "../secret.png", r"'\.\.'")
    _refused(ws, "image/../../secret.png", r"'\.\.'")


def test_refuses_absolute_outside(ws, tmp_path):
    outside = tmp_path / "outside.png"
    _photo(64, 64).save(outside)
    _refused(ws, str(outside), "outside the workspace")
    _refused(ws, "/etc/passwd", "outside the workspace")


def test_refuses_symlink_leaving_workspace(ws, tmp_path):
    outside = tmp_path / "outside.png"
    _photo(64, 64).save(outside)
    link = ws.root / "image" / "link.png"
    os.symlink(outside, link)
    _refused(ws, "image/link.png", "links to a file outside")
    # A folder symlink that leaves the workspace is refused as well.
    os.symlink(tmp_path, ws.root / "image" / "escape")
    _refused(ws, "image/escape/outside.png", "outside")


def test_symlink_inside_workspace_is_fine(ws):
    up = ws.add_image(_photo())
    os.symlink(ws.root / up, ws.root / "image" / "alias.png")
    assert ws.open_image("image/alias.png").size == (512, 320)


def test_refuses_missing_and_suggests(ws):
    up = ws.add_image(_photo())
    typo = up[:-5] + "x.png"
    with pytest.raises(WorkspaceError, match="no image named") as info:
        ws.resolve(typo)
    assert up in str(info.value)  # the close name is suggested
    _refused(ws, "", "empty")
    _refused(ws, "image", "not a file")


def test_refuses_non_image_and_corrupt(ws):
    (ws.root / "image" / "notes.png").write_text("just some text, not a picture")
    _refused(ws, "image/notes.png", "not an image")
    good = io.BytesIO()
    _photo(256, 256).save(good, "PNG")
    data = good.getvalue()
    (ws.root / "image" / "cut.png").write_bytes(data[: len(data) // 2])
    _refused(ws, "image/cut.png", "corrupt or truncated")
    (ws.root / "image" / "empty.png").write_bytes(b"")
    _refused(ws, "image/empty.png", "empty file")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with a few bytes of data: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_refuses_decompression_bomb_before_decoding(ws):
    bomb = _png_header_only(100_000, 100_000)
    (ws.root / "image" / "bomb.png").write_bytes(bomb)
    _refused(ws, "image/bomb.png", "decompression bomb")
    with pytest.raises(WorkspaceError, match="decompression bomb"):
        ws.add_image(bomb)


def test_size_limits_are_configurable(tmp_path):
    small = Workspace(tmp_path / "w", max_pixels=100 * 100, max_bytes=10_000)
    with pytest.raises(WorkspaceError, match="pixels"):
        small.add_image(_photo(200, 200))
    buf = io.BytesIO()
    _photo(200, 200).save(buf, "BMP")
    with pytest.raises(WorkspaceError, match="bytes"):
        small.add_image(buf.getvalue())


def test_bad_uploads_lose_nothing(ws, tmp_path):
    before = ws.list_images()
    for bad in (b"not an image", tmp_path / "missing.png", 12345, "x" * 1000 + ".png"):
        with pytest.raises(WorkspaceError):
            ws.add_image(bad)
    assert ws.list_images() == before


def test_exif_rotated_upload_is_stored_upright(ws, tmp_path):
    # 640x320 landscape pixels, tagged "rotate 90 CW to display" (orientation 6): a 320x640 portrait.
    img = Image.new("RGB", (640, 320), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 320, 320))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "phone.jpg"
    img.save(src, exif=exif.tobytes())
    out = ws.open_image(ws.add_image(src))
    assert out.size == (256, 512)  # portrait, GPT4Tools-resized
    r, g, b = out.getpixel((128, 50))
    assert b > 200 and r < 60  # the blue half is now on top


def test_sixteen_bit_upload_keeps_its_tones(ws):
    ramp = (np.arange(256, dtype=np.uint16)[None, :].repeat(64, 0) * 257).astype(np.uint16)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    out = np.asarray(ws.open_image(ws.add_image(img, resize=False)))
    assert out.shape == (64, 256, 3)
    assert out[0, 0, 0] == 0 and out[0, 255, 0] == 255 and 120 < out[0, 128, 0] < 136


def test_refuses_overlong_names_and_symlink_loops(ws):
    _refused(ws, "a" * 1000 + ".png", "cannot be read|no image named")
    _refused(ws, "image/" + "b" * 300 + ".png", "cannot be read|no image named")
    os.symlink(ws.root / "image" / "l1.png", ws.root / "image" / "l2.png")
    os.symlink(ws.root / "image" / "l2.png", ws.root / "image" / "l1.png")
    _refused(ws, "image/l1.png", "symlink loop|cannot be read")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_refuses_unreadable_file(ws):
    up = ws.add_image(_photo(64, 64))
    (ws.root / up).chmod(0)
    try:
        _refused(ws, up, "cannot be read")
    finally:
        (ws.root / up).chmod(0o644)
