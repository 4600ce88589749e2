"""Where the agent's images live: GPT4Tools naming and resizing, and path safety.

Every tool reads and writes images only through a :class:`Workspace`. Paths the model writes
(``image/1a2b3c4d.png``) are relative to the workspace root, so tools give the same answer
whatever the process's current directory is, and a path the model invents cannot reach a file
outside the workspace.

Naming follows GPT4Tools (``visual_chatgpt.py``/``gpt4tools.py``):

* an upload becomes ``image/<8 hex>.png``, resized so its longer side is 512 and both sides are
  multiples of 64, in RGB;
* a tool output is ``image/<4 hex>_<tag>_<previous>_<original>.png``: the chain of names lets
  the model (and the user) see which upload an edit came from.
"""

from __future__ import annotations

import io
import os
import re
import threading
import uuid
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["Workspace", "WorkspaceError", "ImageSource", "default_root", "gpt4tools_size"]

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image]

IMAGE_DIR = "image"
# Larger than any photo a phone takes (200 MP sensors aside) and far below what a
# decompression bomb claims; checked from the header, before any pixel is decoded.
DEFAULT_MAX_PIXELS = 60_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_TAG_RE = re.compile(r"[^a-z0-9-]+")


class WorkspaceError(ValueError):
    """A path or image the workspace refuses; the message says why in words a model can act on."""


def default_root() -> Path:
    """``$EFE_WORKSPACE`` or ``./workspace``, made absolute now so a later ``chdir`` changes nothing."""
    return Path(os.environ.get("EFE_WORKSPACE") or "workspace").expanduser().resolve()


def gpt4tools_size(width: int, height: int, longest: int = 512) -> tuple[int, int]:
    """GPT4Tools' upload size: scale so the longer side is ``longest``, round sides to 64 (>= 64)."""
    ratio = min(longest / width, longest / height)
    w, h = round(width * ratio), round(height * ratio)
    return max(64, int(round(w / 64.0)) * 64), max(64, int(round(h / 64.0)) * 64)


class Workspace:
    """A folder of images with GPT4Tools names; the only place tools read from and write to."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        png_compress_level: int = 1,
    ) -> None:
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()
        self.max_pixels = int(max_pixels)
        self.max_bytes = int(max_bytes)
        # zlib level 1 writes a 512x512 photo about 4x faster than PIL's default 6 for ~10% more
        # bytes; writing PNGs is most of a classical tool's time.
        self.png_compress_level = int(png_compress_level)
        (self.root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
        self._names_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- uploads ------------------------------------------------------------------------------
    def add_image(self, src: ImageSource, *, resize: bool = True) -> str:
        """Store an upload under a fresh ``image/<8 hex>.png`` name, GPT4Tools-resized, in RGB.

        ``src`` may be a file path (anywhere: it is the user's upload), raw bytes or a PIL image.
        Returns the path relative to the root, the way the model will write it.
        """
        img = self._decode_upload(src)
        # Phones store photos sideways with an EXIF note; the model must see them upright.
        img = _to_rgb(ImageOps.exif_transpose(img))
        if resize:
            size = gpt4tools_size(*img.size)
            if size != img.size:
                img = img.resize(size, Image.Resampling.LANCZOS)
        rel = self._fresh(lambda: f"{IMAGE_DIR}/{uuid.uuid4().hex[:8]}.png")
        try:
            img.save(self.root / rel, "PNG", compress_level=self.png_compress_level)
        except BaseException:
            (self.root / rel).unlink(missing_ok=True)
            raise
        return rel

    def _decode_upload(self, src: ImageSource) -> Image.Image:
        if isinstance(src, Image.Image):
            self._check_pixels(src.size, "the given image")
            return _to_rgb(src)
        if isinstance(src, (bytes, bytearray)):
            if len(src) > self.max_bytes:
                raise WorkspaceError(f"the upload is {len(src)} bytes, more than the {self.max_bytes} allowed")
            return self._decode(io.BytesIO(bytes(src)), "the uploaded bytes")
        if isinstance(src, (str, os.PathLike)):
            path = Path(src).expanduser()
            try:
                if not path.is_file():
                    raise WorkspaceError(f"{_short(str(src))!r} is not an existing file")
            except OSError as exc:
                raise WorkspaceError(f"{_short(str(src))!r} cannot be read: {exc.strerror or exc}") from None
            return self._read_checked(path, str(src))
        raise WorkspaceError(f"cannot read an image from a {type(src).__name__}")

    # -- reading ------------------------------------------------------------------------------
    def resolve(self, rel: str | os.PathLike) -> Path:
        """The file a model-written path names, after every safety check; raises WorkspaceError.

        Refused: empty names, ``..``, absolute paths outside the root, symlinks that leave it,
        missing files, folders, non-images, corrupt images and images too large to decode.
        """
        path = self._locate(rel)
        self._read_checked(path, str(rel))
        return path

    def open_image(self, rel: str | os.PathLike) -> Image.Image:
        """The image at a workspace path, decoded, in RGB."""
        path = self._locate(rel)
        return self._read_checked(path, str(rel))

    def _locate(self, rel: str | os.PathLike) -> Path:
        text = os.fspath(rel) if isinstance(rel, os.PathLike) else rel
        if not isinstance(text, str):
            raise WorkspaceError(f"an image path must be a string, not {type(rel).__name__}")
        text = text.strip().strip("\"'`").strip()
        # "image/ab12cd34.png." : a sentence's full stop, not part of the name.
        if text.endswith(".") and not text.endswith(".."):
            text = text.rstrip(".")
        if not text:
            raise WorkspaceError("the image path is empty; give a file name such as image/1a2b3c4d.png")
        if "\x00" in text:
            raise WorkspaceError("the image path contains a NUL character")
        given = Path(text)
        if ".." in given.parts:
            raise WorkspaceError(f"{text!r} contains '..'; image paths must stay inside the workspace")
        candidate = given if given.is_absolute() else self.root / given
        if not _is_within(candidate.absolute(), self.root):
            raise WorkspaceError(f"{text!r} is outside the workspace; use a path such as image/1a2b3c4d.png")
        try:
            # Symlinks are followed only to see where they lead: a link out of the root is refused.
            real = candidate.resolve()
            if not _is_within(real, self.root):
                raise WorkspaceError(f"{text!r} links to a file outside the workspace")
            if not real.exists():
                hint = self._near_names(given.name)
                raise WorkspaceError(f"there is no image named {text!r} in the workspace{hint}")
            if not real.is_file():
                raise WorkspaceError(f"{text!r} is not a file")
        except RuntimeError:  # Python < 3.13 reports symlink loops this way
            raise WorkspaceError(f"{_short(text)!r} is a symlink loop") from None
        except OSError as exc:  # a name too long, a loop, a permission problem...
            raise WorkspaceError(f"{_short(text)!r} cannot be read: {exc.strerror or exc}") from None
        return real

    def _near_names(self, name: str) -> str:
        import difflib

        names = [p.name for p in (self.root / IMAGE_DIR).glob("*.png")]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        return f"; did you mean {', '.join(f'{IMAGE_DIR}/{c}' for c in close)}?" if close else ""

    def _read_checked(self, path: Path, shown: str) -> Image.Image:
        try:
            self._check_bytes(path, shown)
            with path.open("rb") as f:
                return self._decode(f, shown)
        except OSError as exc:  # unreadable (permissions, a file removed meanwhile)
            raise WorkspaceError(f"{_short(shown)!r} cannot be read: {exc.strerror or exc}") from None

    def _check_bytes(self, path: Path, shown: str) -> None:
        size = path.stat().st_size
        if size > self.max_bytes:
            raise WorkspaceError(f"{shown!r} is {size} bytes, more than the {self.max_bytes} allowed")
        if size == 0:
            raise WorkspaceError(f"{shown!r} is an empty file, not an image")

    def _check_pixels(self, size: tuple[int, int], shown: str) -> None:
        w, h = size
        if w <= 0 or h <= 0:
            raise WorkspaceError(f"{shown} has no pixels ({w}x{h})")
        if w * h > self.max_pixels:
            raise WorkspaceError(
                f"{shown} is {w}x{h} pixels, more than the {self.max_pixels} allowed (a decompression bomb?)"
            )

    def _decode(self, stream, shown: str) -> Image.Image:
        try:
            with warnings.catch_warnings():
                # Our own pixel limit is checked below from the header; PIL's warning adds nothing.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(stream)
                self._check_pixels(img.size, repr(shown) if not shown.startswith("the ") else shown)
                img.load()
        except WorkspaceError:
            raise
        except UnidentifiedImageError:
            raise WorkspaceError(f"{shown!r} is not an image file PIL can read") from None
        except Image.DecompressionBombError as exc:
            raise WorkspaceError(f"{shown!r} is too large to decode: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise WorkspaceError(f"{shown!r} is a corrupt or truncated image ({exc})") from None
        return _to_rgb(img)

    # -- writing ------------------------------------------------------------------------------
    def new_path(self, tool_tag: str, source_rel: str | None = None) -> str:
        """A fresh output name: ``image/<4 hex>_<tag>_<previous>_<original>.png`` (GPT4Tools).

        Without a source (text-to-image) the name is a fresh ``image/<8 hex>.png``.
        """
        if source_rel is None:
            return self._fresh(lambda: f"{IMAGE_DIR}/{uuid.uuid4().hex[:8]}.png")
        tag = _TAG_RE.sub("-", tool_tag.lower()).strip("-")[:24] or "update"
        parts = Path(os.fspath(source_rel).strip()).stem.split("_")
        prev = _trim(parts[0])
        # GPT4Tools names have 4 parts; a name of ours or a user's keeps its first and last part.
        org = _trim(parts[3] if len(parts) == 4 else parts[-1])
        return self._fresh(lambda: f"{IMAGE_DIR}/{uuid.uuid4().hex[:4]}_{tag}_{prev}_{org}.png")

    def save_image(self, img: Image.Image, tag: str, source: str | None = None) -> str:
        """Write a tool's output image under a fresh name and return that name."""
        rel = self.new_path(tag, source)
        try:
            _to_rgb(img).save(self.root / rel, "PNG", compress_level=self.png_compress_level)
        except BaseException:
            (self.root / rel).unlink(missing_ok=True)
            raise
        return rel

    def _fresh(self, make) -> str:
        # Reserve the name by creating the file, so two tools running at once never share one.
        with self._names_lock:
            for _ in range(1000):
                rel = make()
                try:
                    (self.root / rel).open("xb").close()
                except FileExistsError:
                    continue
                return rel
        raise WorkspaceError("could not find a free image name")  # pragma: no cover - 16^4 names

    def list_images(self) -> list[str]:
        return sorted(f"{IMAGE_DIR}/{p.name}" for p in (self.root / IMAGE_DIR).glob("*.png"))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _trim(part: str) -> str:
    part = re.sub(r"[^A-Za-z0-9-]+", "", part)
    return part[:8] or "img"


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # 16-bit and float images (scans, depth maps): PIL's convert would clip them to white.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1e-9)
        low = 0.0 if img.mode.startswith("I;16") else min(float(arr.min()), 0.0)
        grey = ((arr - low) / (top - low) * 255.0).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, as a viewer shows them, not black.
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")
