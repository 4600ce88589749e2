"""Memory a reference tool needs, estimated from parameter counts before any weight is loaded.

With the weights on disk the count is exact: safetensors headers list every tensor's shape (a few
KB read per file, no tensor data). Without them the published counts in ``config.CHECKPOINTS``
are used. Bytes = parameters x bytes per parameter of the dtype the device gets (fp16 on CUDA,
fp32 on CPU) + working memory for one 512x512 run (activations, CUDA caching slack), which is an
estimate: measure with ``benchmarks/`` scripts for exact peaks.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterable

from efe_langchain.backends.reference.config import CHECKPOINTS, checkpoint_info, resolve_checkpoint
from efe_langchain.backends.reference.devices import dtype_name_for, parse_load_spec

__all__ = [
    "TOOL_CHECKPOINTS",
    "count_parameters",
    "estimate_checkpoints",
    "estimate_memory",
    "estimate_placement",
    "tool_checkpoints",
    "weight_bytes",
]

GIB = 1024**3
BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
# Working memory of one call on top of the weights: activations plus PyTorch's allocator slack
# (peak reserved minus weights), for one 512x512 image in fp16, rounded up from
# benchmarks/bench_reference_gpu.py on an H100 (full-size models; results in
# benchmarks/results/reference_gpu_h100.json, where estimate / peak reserved is 1.02-1.29 for
# every tool with the working sets below): BLIP 0.09-0.10 GiB, GroundingDINO 0.57 (800 px input), SAM ViT-H 1.79 (1024 px,
# 32x32 point grid) and 2.29 when all 3072 grid masks pass the filters
# (reference_gpu_h100_sam.json), DPT-Large 0.22, SD 1.5 text2image 1.21, +ControlNet 1.26,
# InstructPix2Pix / inpainting 0.94.
WORKING_BYTES_BY_CHECKPOINT = {
    "blip-caption": int(0.25 * GIB),
    "blip-vqa": int(0.25 * GIB),
    "grounding-dino": int(0.75 * GIB),
    "sam": int(2.5 * GIB),
    "dpt-large": int(0.3 * GIB),
    "dpt-hybrid": int(0.3 * GIB),
}
# Anything else (diffusion checkpoints, folders we do not know) by library.
WORKING_BYTES = {"diffusers": int(1.5 * GIB), "transformers": int(0.75 * GIB)}
# What a process's CUDA context takes on each GPU it touches, before any tensor: 0.61 GiB measured
# on an H100 with PyTorch 2.11 / CUDA 13 (benchmarks/results/reference_gpu_h100.json).
CUDA_CONTEXT_BYTES = int(0.6 * GIB)

_CN = {
    "Canny": "canny", "Line": "mlsd", "Hed": "hed", "Scribble": "scribble",
    "Pose": "openpose", "Seg": "seg", "Depth": "depth", "Normal": "normal",
}  # fmt: skip
_EDIT = ("grounding-dino", "sam", "sd-inpainting")
# GPT4Tools load name (tools.json reference_class) -> the checkpoints the tool runs on
TOOL_CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "ImageCaptioning": ("blip-caption",),
    "VisualQuestionAnswering": ("blip-vqa",),
    "Text2Box": ("grounding-dino",),
    "Segmenting": ("sam",),
    "ObjectSegmenting": ("grounding-dino", "sam"),
    "ImageEditing": _EDIT,
    "ImageEditing.remove": _EDIT,
    "ImageEditing.replace": _EDIT,
    "Inpainting": ("sd-inpainting",),
    "Text2Image": ("sd15",),
    "InstructPix2Pix": ("instruct-pix2pix",),
    "Image2Depth": ("dpt-large",),
    "Image2Normal": ("dpt-hybrid",),
    **{f"{k}Text2Image": ("sd15", f"controlnet-{v}") for k, v in _CN.items()},
}


def tool_checkpoints(tool: str) -> tuple[str, ...] | None:
    """Checkpoint keys a tool runs on: by load name, GPT4Tools name or snake_case name.

    None when ``tool`` is not a GPT4Tools reference tool (e.g. an annotator or a new tool).
    """
    if tool in TOOL_CHECKPOINTS:
        return TOOL_CHECKPOINTS[tool]
    from efe_langchain.prompts import load_tool_specs

    wanted = str(tool).strip().lower()
    for spec in load_tool_specs():
        names = {spec.name.lower(), spec.name.lower().replace(" ", "_"), spec.reference_class.lower()}
        if wanted in names and spec.reference_class in TOOL_CHECKPOINTS:
            return TOOL_CHECKPOINTS[spec.reference_class]
    return None


# -- counting parameters on disk ------------------------------------------------------------------
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _safetensors_params(path: Path) -> int:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in entry["shape"]:
            n *= int(dim)
        total += n
    return total


def _weights_in(folder: Path) -> list[Path]:
    """The weight files ``from_pretrained`` would read in one model folder (one variant)."""
    for stem in ("model", "diffusion_pytorch_model"):
        index = folder / f"{stem}.safetensors.index.json"
        if index.is_file():
            shards = set(json.loads(index.read_text())["weight_map"].values())
            return [folder / s for s in sorted(shards)]
        single = folder / f"{stem}.safetensors"
        if single.is_file():
            return [single]
    for pattern in ("*.safetensors", "*.bin", "*.pth"):
        files = sorted(p for p in folder.glob(pattern) if "non_ema" not in p.name)
        if files:
            # fp16 variants duplicate the fp32 files; count one set
            plain = [p for p in files if ".fp16." not in p.name]
            return plain or files
    return []


def _folder_params(folder: Path) -> int:
    total = 0
    for path in _weights_in(folder):
        if path.suffix == ".safetensors":
            total += _safetensors_params(path)
        else:  # pickled weights carry no cheap header: assume fp32 storage
            total += path.stat().st_size // (2 if ".fp16." in path.name else 4)
    return total


def count_parameters(location: str | Path) -> int:
    """Parameters of a transformers model folder or a diffusers pipeline / model folder."""
    folder = Path(location)
    index = folder / "model_index.json"
    if index.is_file():  # a pipeline: sum the components that hold weights
        components = [k for k, v in json.loads(index.read_text()).items() if isinstance(v, list) and v[0]]
        return sum(_folder_params(folder / c) for c in components if (folder / c).is_dir())
    return _folder_params(folder)


# -- estimates ------------------------------------------------------------------------------------
def weight_bytes(checkpoint: str, dtype: str = "float16", model_dir: str | None = None) -> int:
    """Bytes of one checkpoint's weights in ``dtype`` (exact when the weights are on disk)."""
    where = resolve_checkpoint(checkpoint, model_dir, allow_download=False)
    info = checkpoint_info(checkpoint)
    if where is not None:
        params = count_parameters(where)
    elif info is not None:
        params = info.params
    else:
        raise ValueError(f"unknown checkpoint {checkpoint!r} and no such folder: cannot estimate its memory")
    return params * BYTES_PER_PARAM[dtype]


def _library(checkpoint: str) -> str:
    info = checkpoint_info(checkpoint)
    if info is not None:
        return info.library
    return "diffusers" if (Path(checkpoint) / "model_index.json").is_file() or (
        Path(checkpoint) / "diffusion_pytorch_model.safetensors"
    ).is_file() else "transformers"


def _working_bytes(checkpoint: str) -> int:
    info = checkpoint_info(checkpoint)
    if info is not None and info.key in WORKING_BYTES_BY_CHECKPOINT:
        return WORKING_BYTES_BY_CHECKPOINT[info.key]
    return WORKING_BYTES[_library(checkpoint)]


def _shared_part_bytes(checkpoints: list[str], dtype: str, model_dir: str | None) -> int:
    """Bytes counted twice for SD pipelines on disk that share byte-identical parts.

    The loader keeps one text encoder / VAE per content digest (``diffusion.SHAREABLE_PARTS``);
    files are only hashed when two or more pipeline folders are estimated together.
    """
    folders = [resolve_checkpoint(c, model_dir, allow_download=False) for c in checkpoints]
    pipelines = [Path(f) for f in folders if f and (Path(f) / "model_index.json").is_file()]
    if len(pipelines) < 2:
        return 0
    from efe_langchain.backends.reference.shared import weights_digest

    seen: set[str] = set()
    extra = 0
    for folder in pipelines:
        for part in ("text_encoder", "vae"):
            digest = weights_digest(folder / part) if (folder / part).is_dir() else None
            if digest is None:
                continue
            if digest in seen:
                extra += _folder_params(folder / part) * BYTES_PER_PARAM[dtype]
            seen.add(digest)
    return extra


def estimate_checkpoints(checkpoints: Iterable[str], dtype: str = "float16", model_dir: str | None = None) -> int:
    """Bytes for running several checkpoints together (keys, hub ids or folders), each counted once."""
    checkpoints = list(dict.fromkeys(checkpoints))
    if not checkpoints:
        return 0
    weights = sum(weight_bytes(c, dtype, model_dir) for c in checkpoints)
    weights -= _shared_part_bytes(checkpoints, dtype, model_dir)
    # Models run one after another within a tool, so only the largest working set counts.
    working = max(_working_bytes(c) for c in checkpoints)
    return weights + working


def _name_of(item: Any) -> str:
    for attr in ("load_name", "gpt4tools_name", "name"):
        value = getattr(item, attr, None)
        if value and tool_checkpoints(value) is not None:
            return value
    return str(getattr(item, "name", item))


def estimate_memory(
    tool_or_checkpoint: Any,
    device: str = "cuda",
    dtype: str | None = None,
    model_dir: str | None = None,
) -> int | None | dict[str, int]:
    """Bytes of GPU (or, for ``device="cpu"``, host) memory a tool or checkpoint needs, loading nothing.

    ``tool_or_checkpoint``: a GPT4Tools load name (``"CannyText2Image"``), tool name, snake_case
    name, a checkpoint key (``"sam"``), hub id or weights folder. Returns None for a tool that
    runs on no reference checkpoint (annotators, new tools). A list (of names or of the
    registry's ToolInfo rows) gives ``{name: bytes}`` for those that have an estimate, keyed by
    the rows' ``name`` (snake_case) when they have one.
    """
    dtype = dtype or dtype_name_for(device)
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(BYTES_PER_PARAM)}")
    if not isinstance(tool_or_checkpoint, (str, Path)):
        out: dict[str, int] = {}
        for item in tool_or_checkpoint:
            value = estimate_memory(_name_of(item), device, dtype, model_dir)
            if value is not None:
                out[str(getattr(item, "name", item))] = value
        return out
    name = str(tool_or_checkpoint)
    checkpoints = tool_checkpoints(name)
    if checkpoints is not None:
        return estimate_checkpoints(checkpoints, dtype, model_dir)
    if checkpoint_info(name) is not None or Path(name).is_dir():
        return estimate_checkpoints([name], dtype, model_dir)
    if name in CHECKPOINTS:
        return estimate_checkpoints([name], dtype, model_dir)
    return None


def estimate_placement(spec: str | dict[str, str], model_dir: str | None = None) -> dict[str, int]:
    """Bytes per device for a GPT4Tools ``--load`` spec, each shared checkpoint counted once.

    ``"Text2Box_cuda:0,Segmenting_cuda:0,Inpainting_cuda:1"`` ->
    ``{"cuda:0": GroundingDINO + SAM + working set + CUDA context, "cuda:1": ...}``, which is what
    the process cache will hold: tools on one device share one copy of each model.
    """
    placement = parse_load_spec(spec) if isinstance(spec, str) else dict(spec)
    per_device: dict[str, list[str]] = {}
    for tool, device in placement.items():
        per_device.setdefault(device, []).extend(tool_checkpoints(tool) or ())
    return {
        device: estimate_checkpoints(cks, dtype_name_for(device), model_dir)
        + (CUDA_CONTEXT_BYTES if device.startswith("cuda") else 0)
        for device, cks in per_device.items()
    }
